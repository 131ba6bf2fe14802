// ACCELERATE_DEBUG_MODE: before the real launch, a probe launch checks the environment. The workers
// replay the session (so a replayed cell that fails shows up here, not mid-training), then run a
// self-test: join the rendezvous, pass a barrier, sum a small all-reduce, and report the accelerators each rank sees. Any
// problem ends the cell with Accelerate's sentence and the rank and cause; the real launch does not
// start. Accelerate itself only honours the exact string "true"; here the flag's usual spellings work.
import path from "path";
import { serialize } from "v8";
import { Launch } from "../agent";
import { OptionError, ProbeError, type LaunchEvent, type LaunchPayload, type WorkerSpec } from "../contract";
import { describeEvidence, type Evidence } from "../devices";
import type { ActiveLaunchHandle } from "./launch-host";

export const DEBUG_MODE_ENV = "ACCELERATE_DEBUG_MODE";
/** The probe gives up after this long (TSLAUNCH_PROBE_TIMEOUT_S overrides it). */
const PROBE_TIMEOUT_S = 120;
const ISSUE = "An issue was found when verifying a stable environment for the notebook launcher";

/** ACCELERATE_DEBUG_MODE as a flag: 1/true/yes/on, 0/false/no/off (any case); else an error. */
export function debugModeEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const raw = env[DEBUG_MODE_ENV];
  if (raw === undefined || raw.trim() === "") return false;
  const v = raw.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(v)) return true;
  if (["0", "false", "no", "off"].includes(v)) return false;
  throw new OptionError(`${DEBUG_MODE_ENV} must be one of 1, true, yes, on (debug probe on) or 0, false, no, off, got ${JSON.stringify(raw)}.`);
}

interface SelfTest {
  rank: number;
  localRank: number;
  nodeRank: number;
  visibleDevices: string | null;
  device: string;
  evidence: Evidence[];
}

function selfTestBody(): string {
  const scanModule = path.join(__dirname, "..", "devices", "device-scan.js");
  return [
    `const api = require("tslaunch");`,
    `const scan = require(${JSON.stringify(scanModule)});`,
    `await api.waitForEveryone();`,
    // One small all-reduce across every rank and node: the data plane works before training needs it.
    `const ones = new Float32Array([1, 2]);`,
    `await api.allReduce(ones);`,
    `if (ones[0] !== api.state.numProcesses || ones[1] !== 2 * api.state.numProcesses) throw new Error("the probe's all-reduce of [1, 2] over " + api.state.numProcesses + " ranks gave [" + ones.join(", ") + "]");`,
    `exports.__tslaunch_result__ = { rank: api.state.processIndex, localRank: api.state.localProcessIndex, nodeRank: api.state.nodeRank,`,
    `  visibleDevices: process.env.CUDA_VISIBLE_DEVICES ?? null, device: api.state.device, evidence: scan.scanProcess() };`,
  ].join("\n");
}

/** Runs the probe; resolves with its notice (duration, world size), or throws ProbeError naming the rank and cause. */
export async function runDebugProbe(
  spec: WorkerSpec & { timeoutMs?: number },
  onEvent: (e: LaunchEvent) => void,
  setActive: (l: ActiveLaunchHandle, running: boolean) => void,
): Promise<string> {
  const started = performance.now();
  const payload: LaunchPayload = {
    ...spec.payload,
    body: { executionCount: spec.payload.body.executionCount, js: selfTestBody(), async: true, lastExpressionVar: "__tslaunch_result__", jsLineToCellLine: [] },
    argsV8: serialize([]).toString("base64"),
  };
  // The probe never restarts: its job is to find what would make the real launch fail.
  const launch = new Launch({ ...spec, options: { ...spec.options, maxRestarts: 0 }, payload }, (e) => {
    if (e.type === "notice") onEvent(e);
  });
  setActive(launch, true);
  const timeoutMs = spec.timeoutMs ?? Number(process.env.TSLAUNCH_PROBE_TIMEOUT_S ?? PROBE_TIMEOUT_S) * 1000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    launch.interrupt();
  }, timeoutMs);
  try {
    const result = await launch.run();
    if (timedOut) {
      const missing = [...Array(result.worldSize).keys()].filter((r) => result.returnValues[r] === undefined);
      throw new ProbeError(`${ISSUE}: rank${missing.length > 1 ? "s" : ""} ${missing.join(", ")} did not finish the self-test (rendezvous, barrier and all-reduce) within ${timeoutMs / 1000} s.`);
    }
    if (result.outcome === "interrupted") throw new ProbeError(`${ISSUE}: the probe launch was interrupted.`);
    if (result.outcome === "failed") {
      const f = result.failures[0];
      const cause = f.error
        ? f.error.phase === "replay"
          ? `replaying cell [${f.error.cell}] failed in the worker: ${f.error.ename}: ${f.error.evalue}`
          : `${f.error.ename}: ${f.error.evalue}`
        : f.signal ? `the worker was killed by ${f.signal}` : `the worker exited with code ${f.exitCode}`;
      throw new ProbeError(`${ISSUE}: rank ${f.rank}: ${cause}`);
    }
    const tests = result.returnValues as SelfTest[];
    for (const t of tests) {
      if (t.evidence.length > 0) {
        throw new ProbeError(`${ISSUE}: rank ${t.rank}: replaying the session touched an accelerator in the worker before the launch body ran: ${t.evidence.map(describeEvidence).join("; ")}.`);
      }
    }
    const byDevice = new Map<string, SelfTest>();
    for (const t of tests) {
      if (!t.visibleDevices) continue;
      const key = `${t.nodeRank}:${t.visibleDevices}`;
      const other = byDevice.get(key);
      if (other) {
        throw new ProbeError(
          `${ISSUE}: local ranks ${other.localRank} and ${t.localRank} (ranks ${other.rank} and ${t.rank}) were both given accelerator ${t.visibleDevices}. ` +
            `Use at most as many processes per node as accelerators (--num_processes).`,
        );
      }
      byDevice.set(key, t);
    }
    return probePassedNotice(performance.now() - started, result.worldSize);
  } finally {
    clearTimeout(timer);
    setActive(launch, false);
  }
}

function probePassedNotice(ms: number, worldSize: number): string {
  return `ACCELERATE_DEBUG_MODE: the environment check passed in ${Math.round(ms)} ms (${worldSize} rank${worldSize > 1 ? "s" : ""} replayed the session, met at a barrier, summed an all-reduce across all ranks and nodes, and each sees only its own device); starting the launch.`;
}
