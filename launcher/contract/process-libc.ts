// The few glibc calls a long-lived process (the kernel) uses on itself, through koffi (prebuilt FFI).
// Loaded on first use, once (about 25 ms); null where there is no glibc or no koffi, and every
// caller then does without: these calls only save memory or time, none is needed for correctness.
import type * as Koffi from "koffi";

export interface ProcessLibc {
  /** Gives freed malloc memory back to the system (malloc_trim(0)). */
  trim(): void;
  /**
   * Fixes glibc's trim threshold at 1 MiB. By default each free() of a large block raises it (up
   * to 64 MiB), after which every thread's arena keeps that much free memory resident for good,
   * where malloc_trim cannot reach it (it never shrinks a thread arena's top). Setting it also
   * stops glibc from moving the mmap threshold.
   */
  fixMallocThresholds(): void;
  /** "adds/subs": how many shared objects the dynamic loader has loaded and unloaded so far. */
  loaderCounts(): string | null;
  /** A new non-blocking, close-on-exec inotify instance, or null where the system refuses one. */
  openInotify(): Inotify | null;
}

/** An inotify instance (inotify(7)): directories watched for what happens to the files in them. */
export interface Inotify {
  readonly fd: number;
  /** The watch descriptor, or -1 where the path cannot be watched (missing, no permission, the watch limit). */
  watch(path: string, mask: number): number;
  /** Reads queued events into `buf`: the bytes read, 0 when none are queued, -1 on any other failure. */
  read(buf: Buffer): number;
  close(): void;
}

const IN_NONBLOCK = 0o4000;
const IN_CLOEXEC = 0o2000000;

const M_TRIM_THRESHOLD = -1;
// Low enough that an arena keeps little; high enough that free() does not give back and fault in
// pages all the time (128 KiB made a type-checking cell 10 % slower on this VM, 1 MiB half that).
const TRIM_THRESHOLD_BYTES = 1024 * 1024;

// struct dl_phdr_info on 64-bit glibc: addr, name, phdr (8 bytes each), phnum (2, padded to 8), then
// dlpi_adds and dlpi_subs (8 each). The callback's size argument says whether this glibc has them.
const ADDS_OFFSET = 32;
const SUBS_OFFSET = 40;
const SIZE_WITH_COUNTERS = 48;

let loaded: ProcessLibc | null | undefined;

function load(): ProcessLibc | null {
  if (process.platform !== "linux" || !["x64", "arm64"].includes(process.arch)) return null;
  try {
    const koffi = require("koffi") as typeof Koffi;
    const libc = koffi.load("libc.so.6");
    const mallocTrim = libc.func("int malloc_trim(size_t pad)");
    const mallopt = libc.func("int mallopt(int param, int value)");
    const callbackType = koffi.proto("int tslaunch_phdr_callback(void *info, size_t size, void *data)");
    const iterate = libc.func("int dl_iterate_phdr(tslaunch_phdr_callback *callback, void *data)");
    const inotifyInit = libc.func("int inotify_init1(int flags)");
    const inotifyAddWatch = libc.func("int inotify_add_watch(int fd, const char *path, uint32_t mask)");
    const readInto = libc.func("long read(int fd, _Out_ uint8_t *buf, size_t count)");
    const closeFd = libc.func("int close(int fd)");
    const EAGAIN = koffi.os.errno.EAGAIN;
    let counts: string | null = null;
    // Registered once for the life of the process; the first object's record carries the counters.
    const callback = koffi.register((info: unknown, size: number | bigint) => {
      counts = Number(size) >= SIZE_WITH_COUNTERS
        ? `${koffi.decode(info, ADDS_OFFSET, "uint64_t")}/${koffi.decode(info, SUBS_OFFSET, "uint64_t")}`
        : null;
      return 1; // stop after the first object
    }, koffi.pointer(callbackType));
    return {
      trim: () => void mallocTrim(0),
      fixMallocThresholds: () => {
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
      },
      loaderCounts: () => {
        counts = null;
        iterate(callback, null);
        return counts;
      },
      openInotify: () => {
        const fd = inotifyInit(IN_NONBLOCK | IN_CLOEXEC) as number;
        if (fd < 0) return null;
        let open = true;
        return {
          fd,
          watch: (path, mask) => inotifyAddWatch(fd, path, mask) as number,
          read: (buf) => {
            const n = Number(readInto(fd, buf, buf.length));
            return n >= 0 ? n : koffi.errno() === EAGAIN ? 0 : -1;
          },
          close: () => {
            if (open) closeFd(fd);
            open = false;
          },
        };
      },
    };
  } catch {
    return null; // not glibc (musl has none of these counters), or koffi has no build for this platform
  }
}

/** This process's glibc, or null where it cannot be reached. */
export function processLibc(): ProcessLibc | null {
  if (loaded === undefined) loaded = load();
  return loaded;
}
