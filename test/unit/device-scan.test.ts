// The guard's per-cell look (ProcessScanner.rescan) skips what cannot have changed since the last
// scan. These check that it still sees what a cell does: a device opened on a new descriptor, a
// library the loader maps, and that a full scan() sees a descriptor number reused for a device.
import { closeSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import path from "path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ProcessScanner, watchLists } from "../../launcher/devices";
import { processLibc } from "../../launcher/contract";

const loaderGeneration = () => processLibc()?.loaderCounts() ?? null;

let dir: string;
const opened: number[] = [];

beforeEach(() => {
  // realpath: /proc/self/fd shows resolved paths
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), "tsl-scan-")));
  for (const name of ["fake-accel0", "plain.txt"]) writeFileSync(path.join(dir, name), "");
});

afterEach(() => {
  for (const s of scanners.splice(0)) s.close();
  for (const fd of opened.splice(0)) closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
});

function open(name: string): number {
  const fd = openSync(path.join(dir, name), "r");
  opened.push(fd);
  return fd;
}

function close(fd: number): void {
  closeSync(fd);
  opened.splice(opened.indexOf(fd), 1);
}

/** Scanners of the current test, closed after it (their inotify descriptors). */
const scanners: ProcessScanner[] = [];

function scanner(env: NodeJS.ProcessEnv = {}): ProcessScanner {
  const s = new ProcessScanner(watchLists({ TSLAUNCH_GUARD_DEVICES: path.join(dir, "fake-accel*"), ...env }));
  scanners.push(s);
  return s;
}

describe("ProcessScanner.rescan", () => {
  it("gives what scan() gives while nothing changed", () => {
    const s = scanner();
    open("fake-accel0");
    const full = s.scan();
    expect(full.map((e) => e.detail)).toContain(path.join(dir, "fake-accel0"));
    expect(s.rescan()).toEqual(full);
    expect(s.rescan()).toEqual(full);
  });

  it("sees a device opened after the last scan", () => {
    const s = scanner();
    s.scan();
    expect(s.rescan().filter((e) => e.kind === "device")).toEqual([]);
    open("fake-accel0");
    expect(s.rescan()).toContainEqual({ kind: "device", detail: path.join(dir, "fake-accel0"), accelerator: "configured accelerator" });
  });

  it("forgets a device once it is closed", () => {
    const s = scanner();
    const fd = open("fake-accel0");
    expect(s.rescan().some((e) => e.kind === "device")).toBe(true);
    close(fd);
    expect(s.rescan().some((e) => e.kind === "device")).toBe(false);
  });

  it("sees a device opened under a descriptor number that was another file's at the last scan", () => {
    const s = scanner();
    const plain = open("plain.txt");
    s.rescan();
    close(plain);
    const device = open("fake-accel0");
    expect(device).toBe(plain); // the lowest free number: the same one
    expect(s.rescan()).toContainEqual({ kind: "device", detail: path.join(dir, "fake-accel0"), accelerator: "configured accelerator" });
  });

  it("sees a library the dynamic loader maps after the last scan", () => {
    // A system library this process has not mapped yet (a Node process maps none of these by itself).
    const mapped = readFileSync("/proc/self/maps", "utf8");
    const lib = ["libresolv.so.2", "libutil.so.1", "libz.so.1"].find((name) => !mapped.includes("/" + name));
    if (!lib) throw new Error("libresolv, libutil and libz are all mapped already: no library left to load in this test");
    const s = scanner({ TSLAUNCH_GUARD_LIBRARIES: "/" + lib });
    expect(s.rescan().filter((e) => e.kind === "library")).toEqual([]);
    const before = loaderGeneration();
    expect(before, "dl_iterate_phdr's counters are readable through koffi on glibc").toMatch(/^\d+\/\d+$/);
    const koffi = require("koffi") as typeof import("koffi");
    koffi.load(lib);
    expect(loaderGeneration()).not.toBe(before);
    const libraries = s.rescan().filter((e) => e.kind === "library");
    expect(libraries.map((e) => path.basename(e.detail))).toContain(lib);
  });
});

// Where inotify covers the device paths' directories, rescan() reads /proc/self/fd only after an
// open or close there, or after the watches had to be redone; anything it cannot watch makes it read
// every time. Each case checks the answer too, not only that the read was skipped.
describe("ProcessScanner.rescan with inotify", () => {
  it("skips the descriptors while nothing opens in the watched folders, and reads them after an open there", () => {
    const s = scanner();
    s.rescan();
    const reads = s.descriptorReads;
    s.rescan();
    open("plain.txt"); // in the watched folder, but not a device path
    closeSync(openSync("/proc/self/status", "r")); // elsewhere
    expect(s.rescan().filter((e) => e.kind === "device")).toEqual([]);
    expect(s.descriptorReads).toBe(reads);
    const fd = open("fake-accel0");
    expect(s.rescan()).toContainEqual({ kind: "device", detail: path.join(dir, "fake-accel0"), accelerator: "configured accelerator" });
    expect(s.descriptorReads).toBe(reads + 1);
    expect(s.rescan().some((e) => e.kind === "device")).toBe(true);
    expect(s.descriptorReads).toBe(reads + 1);
    close(fd);
    expect(s.rescan().some((e) => e.kind === "device")).toBe(false);
    expect(s.descriptorReads).toBe(reads + 2);
    s.close();
  });

  it("sees a device in a folder made after the watch started, and in one removed and made again", () => {
    const sub = path.join(dir, "later");
    const s = new ProcessScanner(watchLists({ TSLAUNCH_GUARD_DEVICES: path.join(sub, "accel*") }));
    expect(s.rescan().filter((e) => e.kind === "device")).toEqual([]);
    const { mkdirSync } = require("fs") as typeof import("fs");
    mkdirSync(sub);
    writeFileSync(path.join(sub, "accel0"), "");
    const fd = openSync(path.join(sub, "accel0"), "r");
    opened.push(fd);
    expect(s.rescan().map((e) => e.detail)).toContain(path.join(sub, "accel0"));
    close(fd);
    expect(s.rescan().filter((e) => e.kind === "device")).toEqual([]);
    rmSync(sub, { recursive: true });
    s.rescan();
    mkdirSync(sub);
    writeFileSync(path.join(sub, "accel1"), "");
    opened.push(openSync(path.join(sub, "accel1"), "r"));
    expect(s.rescan().map((e) => e.detail)).toContain(path.join(sub, "accel1"));
    s.close();
  });

  it("still sees a device after a cell closed the watch's own descriptor, and leaves the file that took its number open", () => {
    const { readdirSync, readlinkSync } = require("fs") as typeof import("fs");
    const inotifyFds = () => new Set(readdirSync("/proc/self/fd").filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === "anon_inode:inotify";
      } catch {
        return false;
      }
    }).map(Number));
    const before = inotifyFds();
    const s = scanner();
    s.rescan();
    const mine = [...inotifyFds()].filter((fd) => !before.has(fd));
    expect(mine).toHaveLength(1);
    closeSync(mine[0]);
    // A cell's file takes that very number (the lowest free ones are taken until it comes).
    const extra: number[] = [];
    let plain = open("plain.txt");
    while (plain !== mine[0]) {
      expect(plain, "the freed number never came back").toBeLessThan(mine[0]);
      extra.push(plain);
      plain = open("plain.txt");
    }
    for (const fd of extra) close(fd);
    expect(s.rescan().filter((e) => e.kind === "device")).toEqual([]);
    // The watch gave up on that number without closing it: it is the cell's file.
    expect(readlinkSync(`/proc/self/fd/${plain}`)).toBe(path.join(dir, "plain.txt"));
    s.close();
    expect(readlinkSync(`/proc/self/fd/${plain}`)).toBe(path.join(dir, "plain.txt"));
    close(plain);
    open("fake-accel0");
    expect(s.rescan().map((e) => e.detail)).toContain(path.join(dir, "fake-accel0"));
  });

  it("reads the descriptors every time for a pattern with no fixed folder", () => {
    const s = new ProcessScanner(watchLists({ TSLAUNCH_GUARD_DEVICES: "fake-accel*" }));
    s.rescan();
    const reads = s.descriptorReads;
    s.rescan();
    s.rescan();
    expect(s.descriptorReads).toBe(reads + 2);
    s.close();
  });

  it("closes its inotify descriptor", () => {
    const { readdirSync } = require("fs") as typeof import("fs");
    const before = readdirSync("/proc/self/fd").length;
    const s = scanner();
    s.rescan();
    expect(readdirSync("/proc/self/fd").length).toBe(before + 1);
    s.close();
    expect(readdirSync("/proc/self/fd").length).toBe(before);
  });
});
