// torchrun's log controls for a launch: with --log_dir, every rank's output of every attempt goes to
// DIR/<rdzv_id>/attempt_<n>/<rank>/stdout.log and stderr.log (node 0 writes them all: every node's
// output reaches it), without the prefix; --redirects, --tee and --local_ranks_filter decide what the
// cell still shows. Written by the agent as the output arrives; a failing disk is said once, and
// the cell keeps its output.
//
// With an output limit and no --log_dir, the attempt's output is also kept in memory (at most the
// limit, since that is all the cell shows) so that, once the limit is passed, a default log folder
// gets every line from the start (`useDefaultDir`).
import { mkdirSync, openSync, writeSync, closeSync } from "fs";
import path from "path";
import { stdIncludes, type LaunchOptions, type World } from "../contract";

type StreamName = "stdout" | "stderr";

export class RankLogs {
  private files = new Map<string, number>();
  /** --log_dir, or the folder chosen when the output limit was passed. */
  private dir: string;
  /** What each rank printed so far, while there is no folder yet (rank → stream → text). */
  private memory: Map<number, Record<StreamName, string[]>> | null;
  /** Characters held in `memory`. */
  keptBytes = 0;
  private world: World | null = null;
  /** A problem to say once; after it the files are given up and the cell keeps everything. */
  private problem: string | null = null;
  private disabled = false;

  constructor(
    private readonly options: LaunchOptions,
    /** Keep the output in memory until a folder is chosen (an output limit without --log_dir). */
    keepInMemory = false,
  ) {
    this.dir = options.logDir;
    this.memory = !options.logDir && keepInMemory ? new Map() : null;
  }

  /** Where an attempt's files go (null without a folder). */
  attemptDir(attempt: number): string | null {
    return this.dir ? path.resolve(this.dir, this.options.rdzvId, `attempt_${attempt}`) : null;
  }

  /**
   * The output limit was passed without --log_dir: from now on every line goes to files under
   * `dir`, starting with what was kept in memory. Returns the attempt's folder.
   */
  useDefaultDir(dir: string): string | null {
    if (this.dir) return this.attemptDir(this.world?.attempt ?? 1);
    this.dir = dir;
    const kept = this.memory;
    this.memory = null;
    this.keptBytes = 0;
    if (this.world) this.startAttempt(this.world);
    for (const [rank, streams] of kept ?? []) for (const name of ["stdout", "stderr"] as const) if (streams[name].length) this.writeRaw(rank, name, streams[name].join(""));
    return this.world ? this.attemptDir(this.world.attempt) : null;
  }

  /** A new attempt: its folders are made now, so the cell can name them before any output. */
  startAttempt(world: World): string | null {
    this.close();
    this.world = world;
    this.memory?.clear();
    this.keptBytes = 0;
    const dir = this.attemptDir(world.attempt);
    if (!dir) return null;
    try {
      for (const { rank } of world.ranks) mkdirSync(path.join(dir, String(rank)), { recursive: true });
    } catch (err) {
      this.giveUp(`cannot create ${dir} (${(err as Error).message}); the output stays in the cell only`);
    }
    return dir;
  }

  private giveUp(problem: string): void {
    this.problem = problem;
    this.disabled = true;
  }

  /** A problem writing the files, to say once (then cleared). */
  takeProblem(): string | null {
    const p = this.problem;
    this.problem = null;
    return p;
  }

  /** Writes a rank's (prefixed) output to its file (or keeps it in memory), without the prefix. */
  write(rank: number, name: StreamName, prefixedText: string): void {
    if (!this.world || this.disabled) return;
    const placement = this.world.ranks.find((r) => r.rank === rank);
    const prefix = placement?.prefix ?? "";
    const raw = prefix ? prefixedText.split(/(?<=[\r\n])/).map((seg) => (seg.startsWith(prefix) ? seg.slice(prefix.length) : seg)).join("") : prefixedText;
    if (this.memory) {
      let streams = this.memory.get(rank);
      if (!streams) this.memory.set(rank, (streams = { stdout: [], stderr: [] }));
      streams[name].push(raw);
      this.keptBytes += raw.length;
      return;
    }
    this.writeRaw(rank, name, raw);
  }

  private writeRaw(rank: number, name: StreamName, raw: string): void {
    const dir = this.world && this.attemptDir(this.world.attempt);
    if (!dir || this.disabled) return;
    const file = path.join(dir, String(rank), `${name}.log`);
    try {
      let fd = this.files.get(file);
      if (fd === undefined) {
        fd = openSync(file, "w");
        this.files.set(file, fd);
      }
      const bytes = Buffer.from(raw, "utf8");
      for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done);
    } catch (err) {
      this.giveUp(`cannot write ${file} (${(err as Error).message}); from here on the output stays in the cell only`);
    }
  }

  /** Whether the cell shows this output (redirects and local_ranks_filter may keep it to the files). */
  shows(rank: number, name: StreamName): boolean {
    const placement = this.world?.ranks.find((r) => r.rank === rank);
    if (!placement) return true;
    const { localRanksFilter, redirects, logDir } = this.options;
    if (localRanksFilter && !localRanksFilter.includes(placement.localRank)) return false;
    // Redirected output is kept from the cell only while the files take it.
    return !(logDir && !this.disabled && stdIncludes(redirects, placement.localRank, name));
  }

  close(): void {
    for (const fd of this.files.values()) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
    this.files.clear();
  }
}
