// Pre-replay: an idle warm worker replays the session's cells before a launch takes it, so the
// launch only runs what is new (group/warm-pool.ts decides when, and which worker a launch may take).
//
// The rule: a rank must end up exactly as if it had replayed the session after its rank was given.
// So while pre-replaying, whatever could depend on the launch stops the replay *before* it happens:
// - reading a variable the launch sets per rank (RANK, WORLD_SIZE, CUDA_VISIBLE_DEVICES, ...: the
//   pool's `launchKeys`), or listing the whole environment;
// - loading a native addon or library (it may take a device: no warm worker holds one), starting a process;
// - anything the device scan finds afterwards.
// The worker then says which cell it stopped at ("spoiled") and exits; the pool never pre-replays
// that cell again, and launches replay it after the rank is assigned, as without a pool.
// Every other variable a cell reads is recorded with the first cell that read it: if the launch's
// environment differs there, the pool does not give this worker to the launch.
// Variables a cell writes keep the written value when the rank's environment is applied, as they
// would if the cell ran after it (applyLaunchEnvironment).
import { describeEvidence, scanProcess, watchLists } from "../devices";
import { REPLAYING, type WarmPrepare, type WarmReport } from "../contract";
import { createCellRuntime, runCell, type CellRuntime } from "./replay";

/** Thrown inside a cell that did what a pre-replay may not do; the cell's own code may catch it, the flag stays. */
class PreReplayStop extends Error {
  override name = "PreReplayStop";
}

const CHILD_PROCESS_FUNCTIONS = ["spawn", "spawnSync", "exec", "execSync", "execFile", "execFileSync", "fork"] as const;

export class PreReplay {
  private runtime: CellRuntime | null = null;
  /** How many of the session's cells are replayed here. */
  replayed = 0;
  private readonly reads = new Map<string, number>();
  private readonly written = new Set<string>();
  private launchKeys = new Set<string>();
  private stopped: { at: number; reason: string } | null = null;
  private cellIndex = 0;
  private readonly realEnv = process.env;
  private readonly restore: (() => void)[] = [];
  private guarded = false;

  /** The runtime the cells were replayed in (the launch goes on in it), or null if nothing was replayed. */
  get cellRuntime(): CellRuntime | null {
    return this.runtime;
  }

  /** Replays the next cells; the report goes back to the pool. A spoiled worker must exit. */
  async prepare(message: WarmPrepare): Promise<WarmReport> {
    if (message.first !== this.replayed) return this.spoil(message.first, `asked to replay from cell ${message.first}, but ${this.replayed} are replayed`);
    this.launchKeys = new Set(message.launchKeys);
    this.adoptEnvironment(message.env);
    if (process.cwd() !== message.cwd) process.chdir(message.cwd);
    this.guard();
    const nothing = { executionCount: 0, js: "", async: false, jsLineToCellLine: [] };
    this.runtime ??= createCellRuntime({ cwd: message.cwd, replay: [], body: nothing, sideOutputs: message.sideOutputs });
    (globalThis as Record<symbol, unknown>)[REPLAYING] = true;
    for (const cell of message.cells) {
      this.cellIndex = this.replayed;
      try {
        await runCell(this.runtime, cell, false);
      } catch (err) {
        if (!this.stopped) this.stopped = { at: this.cellIndex, reason: `it threw ${(err as Error)?.name ?? "an error"}` };
      }
      if (this.stopped) return this.spoil(this.stopped.at, this.stopped.reason);
      this.replayed++;
    }
    const evidence = scanProcess(watchLists(this.realEnv));
    if (evidence.length > 0) return this.spoil(this.replayed - 1, `the device scan found ${evidence.map(describeEvidence).join("; ")}`);
    return { type: "tslaunch-prepared", replayed: this.replayed, reads: Object.fromEntries(this.reads) };
  }

  /** An error thrown later by a replayed cell's timer or promise: this worker is no longer like a fresh one. */
  spoilLate(reason: string): WarmReport {
    return this.spoil(this.cellIndex, reason);
  }

  /**
   * The rank's launch arrived: the guards go, and the rank's environment becomes this process's,
   * except variables the replayed cells wrote, which keep what the cells wrote.
   */
  applyLaunchEnvironment(env: Record<string, string>): void {
    this.unguard();
    for (const key of Object.keys(process.env)) if (!(key in env) && !this.written.has(key)) delete process.env[key];
    for (const [key, value] of Object.entries(env)) if (!this.written.has(key)) process.env[key] = value;
  }

  private spoil(at: number, reason: string): WarmReport {
    return { type: "tslaunch-spoiled", at, reason };
  }

  /** The environment cells see now (the kernel's), except what earlier replayed cells wrote. */
  private adoptEnvironment(env: Record<string, string>): void {
    const real = this.realEnv;
    for (const key of Object.keys(real)) if (!(key in env) && !this.written.has(key)) delete real[key];
    for (const [key, value] of Object.entries(env)) if (!this.written.has(key)) real[key] = value;
  }

  private stop(reason: string): never {
    this.stopped ??= { at: this.cellIndex, reason };
    throw new PreReplayStop(`tslaunch: this cell cannot be replayed ahead of its launch (${reason})`);
  }

  private noteRead(key: string): void {
    if (this.launchKeys.has(key) && !this.written.has(key)) this.stop(`it reads ${key}, which each rank gets from its launch`);
    if (!this.reads.has(key) && !this.written.has(key)) this.reads.set(key, this.cellIndex);
  }

  private guard(): void {
    if (this.guarded) return;
    this.guarded = true;
    const real = this.realEnv;
    const env = new Proxy(real, {
      get: (t, key) => {
        if (typeof key === "string") this.noteRead(key);
        return Reflect.get(t, key);
      },
      has: (t, key) => {
        if (typeof key === "string") this.noteRead(key);
        return Reflect.has(t, key);
      },
      getOwnPropertyDescriptor: (t, key) => {
        if (typeof key === "string") this.noteRead(key);
        return Reflect.getOwnPropertyDescriptor(t, key);
      },
      ownKeys: () => this.stop("it lists the whole environment"),
      set: (t, key, value) => {
        if (typeof key === "string") this.written.add(key);
        return Reflect.set(t, key, value);
      },
      defineProperty: (t, key, attrs) => {
        if (typeof key === "string") this.written.add(key);
        return Reflect.defineProperty(t, key, attrs);
      },
      deleteProperty: (t, key) => {
        if (typeof key === "string") this.written.add(key);
        return Reflect.deleteProperty(t, key);
      },
    });
    process.env = env;
    this.restore.push(() => (process.env = real));

    const exit = process.exit;
    process.exit = (() => this.stop("it calls process.exit")) as typeof process.exit;
    this.restore.push(() => (process.exit = exit));

    const dlopen = process.dlopen;
    process.dlopen = (() => this.stop("it loads a native addon, which may take a device")) as typeof process.dlopen;
    this.restore.push(() => (process.dlopen = dlopen));

    // koffi (tslaunch's own FFI, which cells can require too) opens libraries without process.dlopen.
    const koffi = require("koffi") as { load: unknown };
    const load = koffi.load;
    koffi.load = () => this.stop("it loads a native library, which may take a device");
    this.restore.push(() => (koffi.load = load));

    const childProcess = require("child_process") as Record<string, unknown>;
    for (const name of CHILD_PROCESS_FUNCTIONS) {
      const original = childProcess[name] as (...args: unknown[]) => unknown;
      const stopped = () => this.stop("it starts a process");
      Object.defineProperties(stopped, Object.getOwnPropertyDescriptors(original));
      childProcess[name] = stopped;
      this.restore.push(() => (childProcess[name] = original));
    }
  }

  private unguard(): void {
    for (const undo of this.restore.splice(0).reverse()) undo();
    this.guarded = false;
  }
}
