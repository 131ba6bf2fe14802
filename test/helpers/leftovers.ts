/**
 * Leak checks that read /proc directly (Linux only; no `ps`).
 *
 * Typical use:
 *   const since = snapshotTempEntries();            // before the kernel starts
 *   ... start kernel (its kernelspec env carries MARKER=<random>), run cells, shut it down ...
 *   await expectNothingLeft({ markerEnv: { name: 'MARKER', value }, since });
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface ProcStat {
  pid: number;
  comm: string;
  /** One of R S D Z T t X I W P ... (see proc(5)). */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
}

/** Parses /proc/<pid>/stat; undefined if the process does not exist (or vanished while reading). */
export function readStat(pid: number): ProcStat | undefined {
  let raw: string;
  try {
    raw = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm is in parentheses and may itself contain spaces and ')': split at the LAST ')'.
  const open = raw.indexOf('(');
  const close = raw.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const comm = raw.slice(open + 1, close);
  const rest = raw.slice(close + 2).split(' ');
  return {
    pid,
    comm,
    state: rest[0] ?? '?',
    ppid: Number(rest[1]),
    pgrp: Number(rest[2]),
    session: Number(rest[3]),
  };
}

/** All numeric entries of /proc. */
export function listPids(): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (/^\d+$/.test(name)) out.push(Number(name));
  }
  return out;
}

/** The command line of a process, NULs turned into spaces ('' if unreadable; '[comm]' for kernel threads/zombies). */
export function cmdlineOf(pid: number): string {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const s = raw.split('\0').filter((p) => p.length > 0).join(' ');
    if (s) return s;
  } catch {
    /* gone or unreadable */
  }
  const st = readStat(pid);
  return st ? `[${st.comm}]` : '';
}

/** True if the process exists and is not a zombie (Z) or dead (X). */
export function isAlive(pid: number): boolean {
  const st = readStat(pid);
  if (!st) return false;
  return st.state !== 'Z' && st.state !== 'X' && st.state !== 'x';
}

/**
 * Every live descendant of `pid` (children, grandchildren, ...), found through the ppid field of
 * /proc/* /stat. Processes that were re-parented (because their parent died) are NOT descendants
 * any more: use a marker env var to find those.
 */
export function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const p of listPids()) {
    const st = readStat(p);
    if (!st || !isAliveState(st.state)) continue;
    const list = children.get(st.ppid);
    if (list) list.push(p);
    else children.set(st.ppid, [p]);
  }
  const out: number[] = [];
  const seen = new Set<number>([pid]);
  const queue = [pid];
  while (queue.length > 0) {
    const cur = queue.shift()!;
    for (const c of children.get(cur) ?? []) {
      if (seen.has(c)) continue;
      seen.add(c);
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

function isAliveState(state: string): boolean {
  return state !== 'Z' && state !== 'X' && state !== 'x';
}

/**
 * Live processes whose initial environment (/proc/<pid>/environ, i.e. the env at exec time)
 * contains `name=value` (or any `name=...` when value is undefined). Unreadable entries
 * (other users' processes, races with exit) are ignored; this process itself is skipped.
 */
export function processesWithEnv(name: string, value?: string): number[] {
  const exact = value === undefined ? undefined : `${name}=${value}`;
  const prefix = `${name}=`;
  const out: number[] = [];
  for (const pid of listPids()) {
    if (pid === process.pid) continue;
    let raw: Buffer;
    try {
      raw = fs.readFileSync(`/proc/${pid}/environ`);
    } catch {
      continue;
    }
    if (raw.length === 0) continue; // zombies and kernel threads have an empty environ
    const entries = raw.toString('utf8').split('\0');
    const hit = exact !== undefined ? entries.includes(exact) : entries.some((e) => e.startsWith(prefix));
    if (hit && isAlive(pid)) out.push(pid);
  }
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls until none of `pids` is alive (zombies count as gone), or timeoutMs elapses.
 * Resolves to the pids still alive ([] means all gone).
 */
export async function waitUntilGone(pids: number[], timeoutMs: number, intervalMs = 50): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(intervalMs);
    alive = alive.filter(isAlive);
  }
  return alive;
}

/** Sends `signal` to each pid, ignoring ESRCH/EPERM. Returns the pids it signalled. */
export function killPids(pids: number[], signal: NodeJS.Signals = 'SIGKILL'): number[] {
  const done: number[] = [];
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
      done.push(pid);
    } catch {
      /* already gone or not ours */
    }
  }
  return done;
}

/** SIGKILLs every live process carrying `name=value` and waits (up to timeoutMs) for them to go. */
export async function killProcessesWithEnv(name: string, value: string, timeoutMs = 3000): Promise<number[]> {
  const pids = processesWithEnv(name, value);
  killPids(pids, 'SIGKILL');
  await waitUntilGone(pids, timeoutMs);
  return pids;
}

// ---------------------------------------------------------------------------------------------
// Temp-dir entries

export interface TempSnapshot {
  dir: string;
  regex: RegExp;
  entries: Set<string>;
  takenAt: number;
}

/** Default pattern: the per-launch folders tslaunch creates in os.tmpdir(). */
export const TSLAUNCH_TEMP_PREFIX = /^tslaunch-/;

function listMatching(dir: string, regex: RegExp): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => regex.test(n));
}

/** Records the entries of `dir` (default os.tmpdir()) whose names match `prefixRegex`. */
export function snapshotTempEntries(prefixRegex: RegExp = TSLAUNCH_TEMP_PREFIX, dir: string = os.tmpdir()): TempSnapshot {
  return { dir, regex: prefixRegex, entries: new Set(listMatching(dir, prefixRegex)), takenAt: Date.now() };
}

/** Absolute paths of matching entries that exist now but were not in the snapshot. */
export function newTempEntries(before: TempSnapshot): string[] {
  return listMatching(before.dir, before.regex)
    .filter((n) => !before.entries.has(n))
    .map((n) => path.join(before.dir, n));
}

// ---------------------------------------------------------------------------------------------
// The assertion

export interface LeftProcess {
  pid: number;
  state: string;
  cmdline: string;
}

export class LeftoversError extends Error {
  constructor(
    message: string,
    readonly processes: LeftProcess[],
    readonly paths: string[],
  ) {
    super(message);
    this.name = 'LeftoversError';
  }
}

export interface NothingLeftOptions {
  /** Processes whose environment carries this variable (value exact, or any value if omitted). */
  markerEnv?: { name: string; value?: string };
  /** Extra pids that must be gone (e.g. the kernel pid, a server pid). */
  pids?: number[];
  /** Temp entries created since this snapshot must be gone. */
  since?: TempSnapshot;
  /** How long to keep polling before declaring leftovers (cleanup is often asynchronous). Default 5000. */
  timeoutMs?: number;
  /** Ignore these pids (e.g. processes you know about and will kill yourself). */
  ignorePids?: number[];
  /** What is being checked, used in the error message. */
  label?: string;
}

/** A snapshot of what is left right now (no waiting). */
export function findLeftovers(opts: NothingLeftOptions): { processes: LeftProcess[]; paths: string[] } {
  const ignore = new Set(opts.ignorePids ?? []);
  const pids = new Set<number>();
  if (opts.markerEnv) for (const p of processesWithEnv(opts.markerEnv.name, opts.markerEnv.value)) pids.add(p);
  for (const p of opts.pids ?? []) if (isAlive(p)) pids.add(p);
  const processes: LeftProcess[] = [];
  for (const pid of [...pids].sort((a, b) => a - b)) {
    if (ignore.has(pid)) continue;
    const st = readStat(pid);
    if (!st || !isAliveState(st.state)) continue;
    processes.push({ pid, state: st.state, cmdline: cmdlineOf(pid) });
  }
  const paths = opts.since ? newTempEntries(opts.since) : [];
  return { processes, paths };
}

/**
 * Waits up to timeoutMs for every marked process, listed pid and new temp entry to disappear;
 * throws a LeftoversError listing `pid state cmdline` and paths if anything remains.
 */
export async function expectNothingLeft(opts: NothingLeftOptions): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const deadline = Date.now() + timeoutMs;
  let found = findLeftovers(opts);
  while ((found.processes.length > 0 || found.paths.length > 0) && Date.now() < deadline) {
    await sleep(100);
    found = findLeftovers(opts);
  }
  if (found.processes.length === 0 && found.paths.length === 0) return;
  const lines: string[] = [];
  const what = opts.label ? ` after ${opts.label}` : '';
  lines.push(`Left behind${what} (waited ${timeoutMs} ms):`);
  if (found.processes.length > 0) {
    const marker = opts.markerEnv ? ` (marker ${opts.markerEnv.name}${opts.markerEnv.value !== undefined ? '=' + opts.markerEnv.value : ''})` : '';
    lines.push(`  ${found.processes.length} process(es)${marker}:`);
    for (const p of found.processes) lines.push(`    pid ${p.pid} [${p.state}] ${p.cmdline}`);
  }
  if (found.paths.length > 0) {
    lines.push(`  ${found.paths.length} path(s) in ${opts.since!.dir}:`);
    for (const p of found.paths) lines.push(`    ${p}`);
  }
  throw new LeftoversError(lines.join('\n'), found.processes, found.paths);
}
