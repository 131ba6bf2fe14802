// Tells the guard's per-cell look whether any device file could have been opened or closed since
// the last look, so that it can skip reading /proc/self/fd (readdir, then fstat of ~45 descriptors:
// a third of a millisecond per cell on this kind of VM). inotify(7) reports every open and close of
// a file inside a watched directory, whoever opens it and through whatever link, at the moment it
// happens: the directories where the watched device paths live are watched, and a look with no
// event on a watched path since the last one needs no scan.
//
// What inotify cannot see makes the look fall back to scanning every time, never to trusting:
// a path pattern whose directory is not fixed (`/dev/*/x`), more directories than MAX_WATCHES, no
// inotify instance, our descriptor replaced (a cell closed it), or the event queue overflowing.
// Directories that appear later (a device tree created by the driver, a configured folder made by
// a cell) are covered by watching their nearest existing ancestor: a new directory there re-arms
// the watches, and every re-arm is followed by a full scan. (A descriptor passed over a Unix
// socket or duplicated from one already open makes no event: the first case is ignored, the
// second was seen when the original was opened.)
import { fstatSync, readdirSync, statSync } from "fs";
import path from "path";
import { processLibc, type Inotify } from "../contract/process-libc";

/** A directory whose files are device paths; `deep`: its subdirectories' files too. */
export interface WatchedDirectory {
  dir: string;
  deep: boolean;
}

/** Where a device rule's paths live; null when no fixed set of directories holds them all. */
export type DeviceLocations = WatchedDirectory[] | null;

const IN_CLOSE_WRITE = 0x8;
const IN_CLOSE_NOWRITE = 0x10;
const IN_OPEN = 0x20;
const IN_MOVED_FROM = 0x40;
const IN_MOVED_TO = 0x80;
const IN_CREATE = 0x100;
const IN_DELETE = 0x200;
const IN_DELETE_SELF = 0x400;
const IN_MOVE_SELF = 0x800;
const IN_Q_OVERFLOW = 0x4000;
const IN_IGNORED = 0x8000;
const IN_ISDIR = 0x40000000;
const WATCH_MASK = IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF;
/** Events on the watched directory itself, or new directories in it: the set of watches must be redone. */
const REARM = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW;
const EVENT_HEADER = 16; // int wd; uint32 mask, cookie, len; then len bytes of name
/** Beyond this many directories (a deep pattern over a big tree) watching costs more than scanning. */
const MAX_WATCHES = 256;

/** The directories a `*` glob's paths can be in: its fixed prefix's folder, deep when a `*` is in it. */
export function globLocations(glob: string): DeviceLocations {
  if (!path.isAbsolute(glob)) return null;
  const star = glob.indexOf("*");
  if (star < 0) return [{ dir: path.dirname(glob), deep: false }];
  // `*` matches any characters, `/` included: what follows the fixed prefix's folder can be any depth.
  const fixed = glob.slice(0, star);
  const dir = fixed.endsWith("/") ? fixed.slice(0, -1) || "/" : path.dirname(fixed);
  return [{ dir, deep: true }];
}

export class DeviceOpenWatch {
  private inotify: Inotify | null = null;
  /** Our descriptor's identity: a cell that closes it may leave the number to another file. */
  private identity = "";
  private readonly directoryOf = new Map<number, string>();
  private readonly buf = Buffer.alloc(64 * 1024);
  /** Set when watching failed for good: every look then needs a scan. */
  private broken = false;
  /** Nothing was looked at since the watches were made: what came before them is unknown. */
  private fresh = true;

  /**
   * `locations`: one entry per device rule; `matches` tells whether a path is a device path. Null
   * where watching cannot work at all (no inotify here, or a rule without fixed directories).
   */
  static start(locations: DeviceLocations[], matches: (file: string) => boolean): DeviceOpenWatch | null {
    if (locations.some((l) => l === null)) return null;
    const watch = new DeviceOpenWatch(locations as WatchedDirectory[][], matches);
    return watch.arm() ? watch : (watch.close(), null);
  }

  private constructor(
    private readonly locations: WatchedDirectory[][],
    private readonly matches: (file: string) => boolean,
  ) {}

  /**
   * True when nothing happened since the last call that could change which device files this
   * process holds open. False on the first call, and whenever the caller must scan.
   */
  quietSinceLastLook(): boolean {
    if (this.broken || !this.inotify) return false;
    if (!this.stillOurs()) return this.breakDown();
    let quiet = !this.fresh;
    this.fresh = false;
    let rearm = false;
    for (;;) {
      const n = this.inotify.read(this.buf);
      if (n < 0) return this.breakDown();
      if (n === 0) break;
      for (let at = 0; at + EVENT_HEADER <= n; ) {
        const wd = this.buf.readInt32LE(at);
        const mask = this.buf.readUInt32LE(at + 4);
        const len = this.buf.readUInt32LE(at + 12);
        if (at + EVENT_HEADER + len > n) return this.breakDown(); // not an inotify record: not our descriptor
        const name = len > 0 ? this.buf.toString("utf8", at + EVENT_HEADER, at + EVENT_HEADER + len).replace(/\0+$/, "") : "";
        at += EVENT_HEADER + len;
        if (mask & REARM || (mask & IN_ISDIR && mask & (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE))) {
          rearm = true;
          continue;
        }
        const dir = this.directoryOf.get(wd);
        if (dir === undefined || (name && this.matches(path.join(dir, name)))) quiet = false;
      }
      if (n < this.buf.length - 4096) break;
    }
    if (rearm) {
      // Watches redone; what happened between the old ones and the new is unknown: scan.
      if (!this.arm()) return this.breakDown();
      this.fresh = false; // the caller scans now
      return false;
    }
    return quiet;
  }

  close(): void {
    // A number a cell closed may belong to another file by now: that one is not ours to close.
    if (this.stillOurs()) this.inotify?.close();
    this.inotify = null;
    this.directoryOf.clear();
  }

  /** Whether our descriptor number still holds the inotify instance we made (device and inode). */
  private stillOurs(): boolean {
    if (!this.inotify) return false;
    try {
      const st = fstatSync(this.inotify.fd);
      return `${st.dev}:${st.ino}` === this.identity;
    } catch {
      return false;
    }
  }

  private breakDown(): false {
    this.broken = true;
    this.close();
    return false;
  }

  /** (Re)creates the instance and its watches; false when they cannot cover every location. */
  private arm(): boolean {
    this.close();
    const inotify = processLibc()?.openInotify() ?? null;
    if (!inotify) return false;
    this.inotify = inotify;
    const st = fstatSync(inotify.fd);
    this.identity = `${st.dev}:${st.ino}`;
    const wanted = new Set<string>();
    for (const { dir, deep } of this.locations.flat()) {
      const existing = nearestExisting(dir);
      if (!existing) return false;
      wanted.add(existing);
      // A missing directory is watched through its nearest existing ancestor (a new directory
      // there re-arms); an existing deep one with all its subdirectories.
      if (existing === path.resolve(dir) && deep && !addSubdirectories(existing, wanted)) return false;
    }
    if (wanted.size > MAX_WATCHES) return false;
    for (const dir of wanted) {
      const wd = inotify.watch(dir, WATCH_MASK);
      if (wd < 0) return false;
      this.directoryOf.set(wd, dir);
    }
    this.fresh = true;
    return true;
  }
}

function nearestExisting(dir: string): string | null {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      if (statSync(d).isDirectory()) return d;
    } catch {
      // missing: try its parent
    }
    if (d === path.dirname(d)) return null;
  }
}

/** Adds every directory under `dir`; false once there are more than MAX_WATCHES. */
function addSubdirectories(dir: string, into: Set<string>): boolean {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return false; // unreadable: what is in it cannot be known
  }
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const sub = path.join(dir, e.name);
    into.add(sub);
    if (into.size > MAX_WATCHES || !addSubdirectories(sub, into)) return false;
  }
  return true;
}
