// 2. Log throughput: N ranks x L lines (`console.log` in a loop) in a `%%launch` cell, received by our
// Node Jupyter client as iopub stream messages, every line checked (rank prefix, per-rank order, none
// lost). Interleaved rounds with the anchors' raw Node pipe (console.log per line) and ZeroMQ batched
// PUSH/PULL collectors at the same N and L; ratios per round and of medians.
import { kernelKinds, fmt, fmtStats, loadavg, nowMs, ratio, runAnchor, stats, table, timeCell, type Anchors, type CommandLog, type KernelPool, type RunningKernel, type Stats } from "./lib";

export interface LogsOptions {
  n: number;
  lines: number;
  rounds: number;
}

export interface OurLogRun {
  ms: number;
  /** first stream message -> execute_reply+idle */
  streamMs: number;
  linesPerS: number;
  good: number;
  lost: number;
  bad: number;
  outOfOrder: number;
  streamMessages: number;
  stderrMessages: number;
  maxLinesPerMessage: number;
  status: string;
  error?: string;
}

export interface LogsRound {
  load: number[];
  ours?: OurLogRun;
  pipe?: { linesPerS: number; streamLinesPerS: number; lost: number; bad: number; totalS: number };
  zmq?: { linesPerS: number; streamLinesPerS: number; lost: number; bad: number; totalS: number; msgs: number };
  errors: string[];
}

export interface LogsResult {
  options: LogsOptions;
  rounds: LogsRound[];
  summary: {
    ours: Stats;
    oursStreamMessages: Stats;
    pipe: Stats;
    zmq: Stats;
    ratioPipePerRound: Stats;
    ratioZmqPerRound: Stats;
    lost: number;
    bad: number;
    anchorLost: number;
  };
}

const LINE_RE = /^\[rank(\d+)\]: w(\d+) step (\d+) loss=0\.500000$/;

/** Checks every line that reaches the client. Stream text may in principle split a line: carry the tail. */
class OurChecker {
  next: number[];
  good = 0;
  bad = 0;
  outOfOrder = 0;
  streamMessages = 0;
  stderrMessages = 0;
  maxLinesPerMessage = 0;
  tFirst: number | undefined;
  private carry: Record<string, string> = {};
  badSamples: string[] = [];

  constructor(n: number) {
    this.next = new Array(n).fill(0);
  }

  push(name: string, text: string): void {
    this.tFirst ??= nowMs();
    this.streamMessages++;
    if (name !== "stdout") this.stderrMessages++;
    const parts = ((this.carry[name] ?? "") + text).split("\n");
    this.carry[name] = parts.pop()!;
    this.maxLinesPerMessage = Math.max(this.maxLinesPerMessage, parts.length);
    for (const s of parts) this.check(s);
  }

  end(): void {
    for (const rest of Object.values(this.carry)) if (rest) this.check(rest);
    this.carry = {};
  }

  private check(s: string): void {
    const m = LINE_RE.exec(s);
    if (!m || m[1] !== m[2] || +m[1] >= this.next.length) {
      this.bad++;
      if (this.badSamples.length < 5) this.badSamples.push(s.slice(0, 200));
      return;
    }
    const r = +m[1];
    const i = +m[3];
    if (i !== this.next[r]) this.outOfOrder++;
    this.next[r] = i + 1;
    this.good++;
  }
}

/** 60 s, or 0.25 ms per line if more: a healthy run of 200 000 lines takes ~2 s here. */
export function logCellTimeoutMs(opts: LogsOptions): number {
  return Math.max(60_000, opts.n * opts.lines * 0.25);
}

function cellCode(n: number, lines: number): string {
  // A block: nothing leaks into the session between rounds.
  return [
    `%%launch -n ${n}`,
    `{`,
    `  const rank = Number(process.env.RANK);`,
    `  for (let i = 0; i < ${lines}; i++) console.log(\`w\${rank} step \${i} loss=0.500000\`);`,
    `}`,
  ].join("\n");
}

async function ourRun(kernel: RunningKernel, opts: LogsOptions): Promise<OurLogRun> {
  const chk = new OurChecker(opts.n);
  const r = await timeCell(kernel, cellCode(opts.n, opts.lines), (name, text) => chk.push(name, text), logCellTimeoutMs(opts));
  const tEnd = nowMs();
  chk.end();
  const expected = opts.n * opts.lines;
  return {
    ms: r.ms,
    streamMs: chk.tFirst === undefined ? NaN : tEnd - chk.tFirst,
    linesPerS: chk.good / (r.ms / 1e3),
    good: chk.good,
    lost: expected - chk.good,
    bad: chk.bad,
    outOfOrder: chk.outOfOrder,
    streamMessages: chk.streamMessages,
    stderrMessages: chk.stderrMessages,
    maxLinesPerMessage: chk.maxLinesPerMessage,
    status: r.status,
    error: r.errorText ?? (chk.badSamples.length ? `unexpected lines, e.g. ${JSON.stringify(chk.badSamples)}` : undefined),
  };
}

export async function runLogs(opts: LogsOptions, pool: KernelPool, anchors: Anchors, log: CommandLog): Promise<LogsResult> {
  log.add(`[ours] one tslaunch kernel; warm-up "%%launch -n ${opts.n}" of 100 lines; then per round the cell ${JSON.stringify(cellCode(opts.n, opts.lines))}`);
  const kernel = await pool.start(kernelKinds().tslaunch);
  const rounds: LogsRound[] = [];
  let oursBroken = false;
  try {
    const warm = await ourRun(kernel, { ...opts, lines: 100 });
    if (warm.status !== "ok" || warm.lost || warm.bad) console.log(`  warm-up launch: status ${warm.status}, lost ${warm.lost}, bad ${warm.bad} ${warm.error ?? ""}`);
    for (let i = 0; i < opts.rounds; i++) {
      const round: LogsRound = { load: loadavg(), errors: [] };
      try {
        if (oursBroken) throw new Error("skipped: an earlier round of ours failed");
        round.ours = await ourRun(kernel, opts);
        if (round.ours.error) round.errors.push(`ours: ${round.ours.error}`);
      } catch (err) {
        round.errors.push(`ours: ${err instanceof Error ? err.message : err}`);
        // A kernel that timed out or died is not measured further; the anchors' rounds go on.
        oursBroken = true;
      }
      try {
        const j = await runAnchor(anchors, "node", "log_pipe.mjs", ["--n", opts.n, "--lines", opts.lines, "--mode", "console", "--reps", 1], log);
        round.pipe = { linesPerS: j.lines_per_s.median, streamLinesPerS: j.stream_lines_per_s.median, lost: j.lost, bad: j.bad, totalS: j.total.median };
      } catch (err) {
        round.errors.push(`pipe: ${err instanceof Error ? err.message : err}`);
      }
      try {
        const j = await runAnchor(anchors, "node", "log_zmq.mjs", ["--n", opts.n, "--lines", opts.lines, "--mode", "batched", "--batch", 1000, "--transport", "tcp", "--reps", 1], log);
        round.zmq = { linesPerS: j.lines_per_s.median, streamLinesPerS: j.stream_lines_per_s.median, lost: j.lost, bad: j.bad, totalS: j.total.median, msgs: j.raw?.[0]?.msgs };
      } catch (err) {
        round.errors.push(`zmq: ${err instanceof Error ? err.message : err}`);
      }
      const o = round.ours;
      console.log(
        `  round ${i + 1}/${opts.rounds}: ours ${fmt((o?.linesPerS ?? NaN) / 1e3, 0)}k lines/s (${o?.streamMessages} stream msgs, lost ${o?.lost}, bad ${o?.bad}, out of order ${o?.outOfOrder}) | ` +
          `pipe ${fmt((round.pipe?.linesPerS ?? NaN) / 1e3, 0)}k | zmq batched ${fmt((round.zmq?.linesPerS ?? NaN) / 1e3, 0)}k | load ${round.load.join(" ")}`,
      );
      for (const e of round.errors) console.log(`    error: ${e}`);
      rounds.push(round);
    }
  } finally {
    await pool.dispose(kernel);
  }
  const ours = rounds.flatMap((r) => (r.ours ? [r.ours] : []));
  const num = (xs: (number | undefined)[]) => xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
  return {
    options: opts,
    rounds,
    summary: {
      ours: stats(ours.map((o) => o.linesPerS)),
      oursStreamMessages: stats(ours.map((o) => o.streamMessages)),
      pipe: stats(num(rounds.map((r) => r.pipe?.linesPerS))),
      zmq: stats(num(rounds.map((r) => r.zmq?.linesPerS))),
      ratioPipePerRound: stats(num(rounds.map((r) => ratio(r.ours?.linesPerS, r.pipe?.linesPerS)))),
      ratioZmqPerRound: stats(num(rounds.map((r) => ratio(r.ours?.linesPerS, r.zmq?.linesPerS)))),
      lost: ours.reduce((s, o) => s + o.lost, 0),
      bad: ours.reduce((s, o) => s + o.bad + o.outOfOrder, 0),
      anchorLost: rounds.reduce((s, r) => s + (r.pipe?.lost ?? 0) + (r.pipe?.bad ?? 0) + (r.zmq?.lost ?? 0) + (r.zmq?.bad ?? 0), 0),
    },
  };
}

export function logsTables(res: LogsResult): string {
  const { options: o, summary: s, rounds } = res;
  const k = (st: Stats) => fmtStats(st, 1e-3, 0);
  const total = o.n * o.lines;
  const oursRuns = rounds.flatMap((r) => (r.ours ? [r.ours] : []));
  const finite = (xs: (number | undefined)[]) => xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
  const streamOurs = stats(finite(oursRuns.map((r) => r.good / (r.streamMs / 1e3))));
  const streamPipe = stats(finite(rounds.map((r) => r.pipe?.streamLinesPerS)));
  const streamZmq = stats(finite(rounds.map((r) => r.zmq?.streamLinesPerS)));
  const rows = [
    [
      `ours: \`%%launch -n ${o.n}\`, console.log per line -> iopub -> KernelClient`,
      k(s.ours),
      "1.00",
      fmtStats(s.ratioPipePerRound, 1, 2),
      fmtStats(s.ratioZmqPerRound, 1, 2),
      `${s.lost} lost, ${s.bad} bad/out of order`,
    ],
    ["anchor: Node pipe, console.log per line (`node/log_pipe.mjs --mode console`)", k(s.pipe), fmt(ratio(s.ours.median, s.pipe.median), 2), "1.00", "—", ""],
    ["anchor: Node ZeroMQ PUSH/PULL tcp, 1000 lines/msg (`node/log_zmq.mjs --mode batched`)", k(s.zmq), fmt(ratio(s.ours.median, s.zmq.median), 2), "—", "1.00", ""],
  ];
  const out = [
    `${o.n} ranks x ${o.lines} lines (${total} lines per run), ${rounds.length} interleaved rounds (ours, pipe, zmq). lines/s (thousands) min / median / max; ` +
      "ours = lines received and checked / (execute_request -> execute_reply+idle), including the worker start-up; anchors = lines / (spawn of the first child -> last line).",
    `Anchor lost+bad lines over all rounds: ${s.anchorLost}.`,
    "",
    table(["mechanism", "lines/s (k)", "ours / this (ratio of medians)", "ours / pipe per round", "ours / zmq per round", "checked"], rows),
    "",
    "Stream-only lines/s (k), first line -> last line, i.e. without the worker start-up. Ours: first iopub stream message -> execute_reply+idle; " +
      "that first message already carries a whole batch (>= 50 ms of output, often far more), so this figure flatters ours and is not a like-for-like ratio:",
    "",
    table(
      ["ours", "Node pipe console", "Node zmq batched", "ours / pipe (medians)", "ours / zmq (medians)"],
      [[k(streamOurs), k(streamPipe), k(streamZmq), fmt(ratio(streamOurs.median, streamPipe.median), 2), fmt(ratio(streamOurs.median, streamZmq.median), 2)]],
    ),
    "",
    table(
      ["ours, per run", "min / median / max"],
      [
        ["execute_request -> reply+idle (s)", fmtStats(stats(oursRuns.map((r) => r.ms)), 1e-3, 2)],
        ["execute_request -> first stream message (s)", fmtStats(stats(oursRuns.map((r) => r.ms - r.streamMs)), 1e-3, 2)],
        ["first stream message -> reply+idle (s)", fmtStats(stats(oursRuns.map((r) => r.streamMs)), 1e-3, 2)],
        ["iopub stream messages", fmtStats(s.oursStreamMessages, 1, 0)],
        ["lines per stream message (mean)", fmtStats(stats(oursRuns.map((r) => (r.streamMessages ? r.good / r.streamMessages : NaN))), 1, 0)],
        ["lines in the largest stream message", fmtStats(stats(oursRuns.map((r) => r.maxLinesPerMessage)), 1, 0)],
        ["stderr stream messages", fmtStats(stats(oursRuns.map((r) => r.stderrMessages)), 1, 0)],
      ],
    ),
  ];
  const errors = rounds.flatMap((r, i) => r.errors.map((e) => `round ${i + 1}: ${e}`));
  if (errors.length) out.push("", "Errors:", ...errors.map((e) => `* ${e}`));
  return out.join("\n");
}
