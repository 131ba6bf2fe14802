#!/usr/bin/env python3
"""Where a warm `%%launch` spends its time, from execute_request to idle, phase by phase.

Runs the kernel (dist/) under jupyter_client with TSLAUNCH_TRACE set, so the kernel, the agent and
the workers append timing marks (launcher/contract/trace.ts) to one file; prints the median time
from execute_request at which each phase ended. Optionally replays the latency bench's 10-cell
session first (pre-replayed by the warm workers).

  /usr/bin/python3 bench/profile-launch.py [--n 4] [--reps 10] [--session]
"""
import argparse, json, os, re, statistics, subprocess, sys, tempfile, time
from jupyter_client.manager import KernelManager
from jupyter_client.kernelspec import KernelSpec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHASES = [
    "kernel: %%launch cell", "kernel: body compiled", "kernel: device guard passed", "kernel: live view opened",
    "agent: folder, channel, payload ready", "group: all handed out", "LAST worker: hello sent", "LAST worker: body returned",
    "LAST worker: acked, exiting", "LAST group: closed", "agent: group stopped", "agent: released", "kernel: launch returned", "kernel: idle",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--session", action="store_true")
    a = ap.parse_args()
    trace = tempfile.mktemp(prefix="tslaunch-trace-")
    km = KernelManager()
    km._kernel_spec = KernelSpec(argv=["node", os.path.join(ROOT, "dist/bin/tslaunch.js"), "kernel", "--connection-file", "{connection_file}"],
                                 display_name="tslaunch", language="typescript", env={})
    km.start_kernel(env={**os.environ, "TSLAUNCH_TRACE": trace})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        run = lambda code: kc.execute_interactive(code, timeout=60, output_hook=lambda m: None)["content"]["status"]
        run("1")
        if a.session:
            cells = json.loads(subprocess.check_output(["node", "-e", "console.log(JSON.stringify(require('./dist/bench/latency.js').SESSION_CELLS))"], cwd=ROOT))
            for c in cells:
                assert run(c) == "ok"
        code = f"%%launch -n {a.n}\n1\n"
        assert run(code) == "ok"  # cold: fills the pool
        wall = []
        for _ in range(a.reps):
            time.sleep(1)  # think time: the pool refills (and pre-replays) while the kernel is idle
            t = time.perf_counter()
            assert run(code) == "ok"
            wall.append((time.perf_counter() - t) * 1000)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    rows = [l.split(" ", 2) for l in open(trace).read().splitlines()]
    os.unlink(trace)
    starts = [i for i, r in enumerate(rows) if r[2] == "kernel: execute_request"]
    per = {p: [] for p in PHASES}
    launches = 0
    for k, i in enumerate(starts):
        seg = rows[i:starts[k + 1] if k + 1 < len(starts) else len(rows)]
        if not any(r[2] == "kernel: %%launch cell" for r in seg):
            continue
        launches += 1
        if launches == 1:
            continue  # the cold launch
        t0, seen = float(seg[0][0]), {}
        for t, _pid, label in seg:
            label = re.sub(r"^group: rank \d+ closed$", "group: closed", label)
            seen.setdefault(label, float(t) - t0)
            seen["LAST " + label] = float(t) - t0
        for p in PHASES:
            if p in seen:
                per[p].append(seen[p])
    print(f"warm %%launch -n {a.n}{' after a 10-cell session' if a.session else ''}: client round trip median {statistics.median(wall):.1f} ms over {len(wall)} reps")
    print("ms from execute_request (median) | phase ended")
    prev = 0.0
    for p in PHASES:
        if per[p]:
            m = statistics.median(per[p])
            print(f"{m:8.1f} (+{m - prev:5.1f}) | {p}")
            prev = m


if __name__ == "__main__":
    sys.exit(main())
