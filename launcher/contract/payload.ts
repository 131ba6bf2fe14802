// What a launch ships to its workers: the session to replay and the code to run. Written by the
// kernel (or the function API, or `tslaunch run`) and read by worker-main.
import { readFileSync, writeFileSync } from "fs";

/** One piece of JavaScript recorded from tslab's converter (no TypeScript compiler in workers). */
export interface RecordedCell {
  /** Jupyter's execution count of the cell; 0 for code that is not a cell (e.g. `tslaunch run`). */
  executionCount: number;
  /** CommonJS output of tslab's converter: reads earlier names from `exports`. */
  js: string;
  /** The converter saw a top-level await: the code runs in an async function. */
  async: boolean;
  /** The variable the converter stored a trailing expression in (dropped in workers). */
  lastExpressionVar?: string;
  /** jsLineToCellLine[i] = 1-based cell line of JavaScript line i+1 (0: unknown). */
  jsLineToCellLine: number[];
  /** What prompt()/input() answered while the cell ran in the kernel: a replay gets the same answers. */
  stdinAnswers?: string[];
}

export interface LaunchPayload {
  /** Folder that bare `require()` calls resolve from (the kernel's working directory). */
  cwd: string;
  /** Earlier successful cells, in execution order. */
  replay: RecordedCell[];
  /** The launch body (a `%%launch` cell, or the call of a launched function). */
  body: RecordedCell;
  /** Structured-cloned (v8-serialized, base64) arguments for the function API. */
  argsV8?: string;
  /**
   * A script's launches before this one (v8-serialized, base64, an array of PriorOutcome): in its
   * workers, the script's earlier notebookLauncher calls resolve (or reject) as they did in the script.
   */
  priorOutcomesV8?: string;
  /** JS files compiled from local .ts modules the cells import (tslab's "side outputs"). */
  sideOutputs?: { path: string; data: string }[];
}

/** How an earlier launch of a script ended, as its notebookLauncher call saw it. */
export type PriorOutcome = { ok: true; value: unknown[] } | { ok: false; name: string; message: string };

/** Where a worker leaves the script's prior outcomes for notebookLauncher (a global: api is above worker). */
export const PRIOR_OUTCOMES = Symbol.for("tslaunch.priorOutcomes");

export function writePayload(path: string, payload: LaunchPayload): void {
  writeFileSync(path, JSON.stringify(payload), { mode: 0o600 });
}

export function readPayload(path: string): LaunchPayload {
  return JSON.parse(readFileSync(path, "utf8")) as LaunchPayload;
}

/** The file name a cell's JavaScript runs under, so stack traces can be mapped back to the cell. */
export function cellFileName(executionCount: number, isBody: boolean): string {
  return isBody ? `tslaunch-launch-cell-${executionCount}.js` : `tslaunch-cell-${executionCount}.js`;
}
