// The one error report a failed launch ends with: the rank that failed first (exit code or signal,
// its error and stack mapped to cell lines), then the other failures in one line. Errors are not
// buried in the ranks' log spam: this is shown once, after the logs.
import type { CellError, RankFailure, RunResult } from "../contract";

/** The report of a launch that did not succeed (a CellError: what the kernel, API and CLI show). */
export type LaunchErrorReport = CellError;

function exitText(f: RankFailure): string {
  return f.signal ? `killed by ${f.signal}` : `exit code ${f.exitCode}`;
}

export function buildErrorReport(result: RunResult, worldSize = result.worldSize): LaunchErrorReport {
  if (result.outcome === "interrupted") {
    return {
      ename: "KeyboardInterrupt",
      evalue: "the launch was interrupted; every worker was stopped",
      traceback: ["KeyboardInterrupt: the launch was interrupted; every worker was stopped."],
    };
  }
  const [first, ...others] = result.failures;
  if (!first) {
    return { ename: "LaunchError", evalue: "the launch failed", traceback: ["LaunchError: the launch failed"] };
  }
  const where = first.error?.phase === "replay" ? ` while replaying cell [${first.error.cell}]` : "";
  const what = first.error ? `${first.error.ename}: ${first.error.evalue}` : "it reported no error before exiting";
  const evalue = `rank ${first.rank} failed first${where} (${exitText(first)}): ${what}`;
  const traceback = [`LaunchError: ${evalue}`];
  if (first.error?.stack) {
    traceback.push("", `rank ${first.rank}:`, ...first.error.stack.split("\n"));
  }
  const tail: string[] = [];
  if (others.length > 0) {
    tail.push(`${others.length} other rank${others.length > 1 ? "s" : ""} failed: ` + others.map((o) => `rank ${o.rank} (${exitText(o)}${o.error ? `, ${o.error.ename}: ${o.error.evalue}` : ""})`).join("; ") + ".");
  } else {
    tail.push("No other rank failed.");
  }
  // What happened to each remaining rank: it had already finished, or we stopped it.
  const failed = new Set(result.failures.map((f) => f.rank));
  const rest = Array.from({ length: worldSize }, (_, r) => r).filter((r) => !failed.has(r));
  const finished = rest.filter((r) => result.rankStates?.[r] === "succeeded");
  const stopped = rest.filter((r) => result.rankStates?.[r] !== "succeeded");
  const ranks = (list: number[]) => `${list.length > 1 ? "ranks" : "rank"} ${list.join(", ")}`;
  if (finished.length > 0) tail.push(`${capitalize(ranks(finished))} had already finished (exit code 0).`);
  if (stopped.length > 0) tail.push(`${capitalize(ranks(stopped))} ${stopped.length > 1 ? "were" : "was"} stopped by tslaunch.`);
  if (result.restarts > 0) tail.push(`The worker group was restarted ${result.restarts} time${result.restarts > 1 ? "s" : ""} before this.`);
  traceback.push("", tail.join(" "));
  return { ename: "LaunchError", evalue, traceback };
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
