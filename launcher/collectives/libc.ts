// The few libc calls the shared-memory data plane needs, through koffi (prebuilt FFI, no compiler).
// Node has no shm_open/mmap/futex of its own; these are the whole native surface of the module.
import koffi = require("koffi");

const lib = koffi.load("libc.so.6");

// Linux x86_64 / aarch64 constants (asm-generic values; checked against <fcntl.h> and <sys/mman.h>).
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x01;
const MAP_POPULATE = 0x8000; // pre-fault the pages now, not on the first (timed) collective
const FUTEX_WAIT = 0; // not the _PRIVATE variants: the word is shared between processes
const FUTEX_WAKE = 1;
const SYS_futex = process.arch === "arm64" ? 98 : 202;
const EINTR = 4;

const shm_open = lib.func("int shm_open(const char *name, int oflag, uint32_t mode)");
const shm_unlink_ = lib.func("int shm_unlink(const char *name)");
const ftruncate = lib.func("int ftruncate(int fd, int64_t length)");
const close_ = lib.func("int close(int fd)");
const mmap = lib.func("void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)");
const munmap_ = lib.func("int munmap(void *addr, size_t length)");
const strerror = lib.func("const char *strerror(int errnum)");
// syscall(2) is variadic, but glibc implements it as a register shuffle in assembly, so a fixed
// prototype is call-compatible on x86_64 and aarch64, and avoids koffi's slower variadic path
// (this call sits on the wait path of every collective step).
const futexCall = lib.func(
  "long syscall(long nr, uintptr_t uaddr, int op, int val, void *timeout, void *uaddr2, int val3)",
);
const sched_yield_ = lib.func("int sched_yield()");

function fail(what: string, name: string): never {
  const code = koffi.errno();
  const err = new Error(`${what}(${name}) failed: ${strerror(code)} (errno ${code})`) as NodeJS.ErrnoException;
  err.errno = code;
  throw err;
}

/** A mapped shared-memory object: `buffer` stays valid until `unmap()`; accessing it afterwards crashes the process. */
export interface Mapping {
  readonly buffer: ArrayBuffer;
  /** Address of byte 0, for futex calls. */
  readonly address: number;
  readonly length: number;
  unmap(): void;
}

/** Opens (or with `create`, exclusively creates and sizes) a POSIX shm object and maps it shared, read-write. */
export function mapShared(name: string, length: number, create: boolean): Mapping {
  const fd: number = shm_open(name, create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR, 0o600);
  if (fd < 0) fail("shm_open", name);
  let ptr: unknown;
  try {
    if (create && ftruncate(fd, length) !== 0) fail("ftruncate", name);
    ptr = mmap(null, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (ptr === null || koffi.address(ptr) === 0xffffffffffffffffn) fail("mmap", name);
  } catch (err) {
    close_(fd);
    if (create) shm_unlink_(name);
    throw err;
  }
  close_(fd); // the mapping keeps the object alive; the descriptor is not needed any more
  const buffer = koffi.view(ptr, length);
  let mapped = true;
  return {
    buffer,
    address: Number(koffi.address(ptr)),
    length,
    unmap() {
      if (!mapped) return;
      mapped = false;
      munmap_(ptr, length);
    },
  };
}

/** Removes the name (existing mappings stay valid). Returns false if it did not exist. */
export function unlinkShared(name: string): boolean {
  return shm_unlink_(name) === 0;
}

// One timespec per process is enough: JS is single-threaded and the call is synchronous.
const timespec = Buffer.alloc(16);

/**
 * Sleeps while the 32-bit word at `address` equals `expected`, at most `timeoutUs` microseconds.
 * Returns early on a wake, a changed word (EAGAIN) or a signal; the caller re-checks its condition.
 */
export function futexWait(address: number, expected: number, timeoutUs: number): void {
  timespec.writeBigInt64LE(BigInt(Math.floor(timeoutUs / 1e6)), 0);
  timespec.writeBigInt64LE(BigInt((timeoutUs % 1e6) * 1000), 8);
  const r = futexCall(SYS_futex, address, FUTEX_WAIT, expected, timespec, null, 0);
  if (r < 0 && koffi.errno() === EINTR) return;
}

/** Wakes every process sleeping on the word at `address`. */
export function futexWakeAll(address: number): void {
  futexCall(SYS_futex, address, FUTEX_WAKE, 0x7fffffff, null, null, 0);
}

export function schedYield(): void {
  sched_yield_();
}
