// Who started this process, read as early as possible: a client that dies while the kernel is still
// loading (about a second) would otherwise leave it with init as its parent and nothing to watch.
// bin/tslaunch.ts imports this first; kernel/main.ts watches that process.
export const STARTED_BY = process.ppid;
