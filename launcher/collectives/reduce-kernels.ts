// Element-wise reduction kernels: a tiny WebAssembly SIMD module, assembled here byte by byte.
//
// Why not a JS loop: `out[i] = a[i] + b[i]` over Float32Arrays runs at ~1.5 GB/s on this machine
// (measured: 0.6 ms per 1 MiB), slower than the copies around it, and a 4-rank all-reduce on 2 cores is
// CPU-bound. The same fold in 128-bit wasm SIMD runs at memory speed. Wasm cannot address the shared
// mapping or the caller's array, so callers copy operands into `scratch` (in-cache memcpy, ~25 GB/s),
// fold there, and copy the result out.
//
// Semantics, identical on every rank: a left fold in the order the sources are given, each step rounded
// to the element type (IEEE binary32 / binary64 lanes; int32 wraps like C). That equals the JS reference
// `Math.fround(Math.fround(a + b) + c)` for float32, `(a + b) | 0` / `Math.imul` for int32.

export type ReduceOp = "sum" | "mean" | "max" | "min" | "product";
export type DType = "float32" | "float64" | "int32";

/** Bytes per vector lane group; scratch regions are padded to this so tails need no scalar loop. */
export const VECTOR_BYTES = 16;

const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(s: string): number[] {
  const bytes = [...Buffer.from(s, "utf8")];
  return [...uleb(bytes.length), ...bytes];
}

// Opcodes (WebAssembly core + SIMD, final encodings).
const get = (i: number) => [0x20, i];
const set = (i: number) => [0x21, i];
const i32const = (v: number) => [0x41, v]; // small non-negative values only (one-byte SLEB)
const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_GE_U = 0x4f;
const I32_EQZ = 0x45;
const F32_DEMOTE_F64 = 0xb6;
const BLOCK = [0x02, 0x40];
const LOOP = [0x03, 0x40];
const END = 0x0b;
const br = (depth: number) => [0x0c, depth];
const brIf = (depth: number) => [0x0d, depth];
const simd = (op: number) => [0xfd, ...uleb(op)];
const V128_LOAD = [...simd(0x00), 4, 0]; // memarg: align 2^4, offset 0
const V128_STORE = [...simd(0x0b), 4, 0];

const LANE_OPS: Record<DType, Record<"sum" | "product" | "max" | "min", number>> = {
  float32: { sum: 0xe4, product: 0xe6, min: 0xe8, max: 0xe9 },
  float64: { sum: 0xf0, product: 0xf2, min: 0xf4, max: 0xf5 },
  int32: { sum: 0xae, product: 0xb5, min: 0xb6, max: 0xb8 },
};

/**
 * fold(dst, src, stride, count, nbytes): for each 16-byte vector v in [0, nbytes):
 *   dst[v] = src[v] ⊕ src[v + stride] ⊕ … ⊕ src[v + (count-1)·stride]   (left to right)
 * dst may equal src. nbytes must be a multiple of 16.
 */
function foldBody(laneOp: number): number[] {
  const [dst, src, stride, count, nbytes, end, p, k, acc] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const code = [
    ...get(dst), ...get(nbytes), I32_ADD, ...set(end),
    ...BLOCK, ...LOOP,
    ...get(dst), ...get(end), I32_GE_U, ...brIf(1),
    ...get(src), ...V128_LOAD, ...set(acc),
    ...get(src), ...get(stride), I32_ADD, ...set(p),
    ...get(count), ...i32const(1), I32_SUB, ...set(k),
    ...BLOCK, ...LOOP,
    ...get(k), I32_EQZ, ...brIf(1),
    ...get(acc), ...get(p), ...V128_LOAD, ...simd(laneOp), ...set(acc),
    ...get(p), ...get(stride), I32_ADD, ...set(p),
    ...get(k), ...i32const(1), I32_SUB, ...set(k),
    ...br(0), END, END,
    ...get(dst), ...get(acc), ...V128_STORE,
    ...get(dst), ...i32const(16), I32_ADD, ...set(dst),
    ...get(src), ...i32const(16), I32_ADD, ...set(src),
    ...br(0), END, END,
    END,
  ];
  const locals = vec([[3, I32], [1, V128]]);
  const body = [...locals, ...code];
  return [...uleb(body.length), ...body];
}

/** scale(dst, nbytes, divisor): dst[v] = dst[v] / divisor, lane-wise (float32 divides in binary32). */
function divideBody(dtype: "float32" | "float64"): number[] {
  const [dst, nbytes, divisor, end, d] = [0, 1, 2, 3, 4];
  const splat = dtype === "float32" ? [F32_DEMOTE_F64, ...simd(0x13)] : simd(0x14);
  const div = simd(dtype === "float32" ? 0xe7 : 0xf3);
  const code = [
    ...get(dst), ...get(nbytes), I32_ADD, ...set(end),
    ...get(divisor), ...splat, ...set(d),
    ...BLOCK, ...LOOP,
    ...get(dst), ...get(end), I32_GE_U, ...brIf(1),
    ...get(dst), ...get(dst), ...V128_LOAD, ...get(d), ...div, ...V128_STORE,
    ...get(dst), ...i32const(16), I32_ADD, ...set(dst),
    ...br(0), END, END,
    END,
  ];
  const body = [...vec([[1, I32], [1, V128]]), ...code];
  return [...uleb(body.length), ...body];
}

const DTYPES: DType[] = ["float32", "float64", "int32"];
const FOLD_OPS = ["sum", "product", "max", "min"] as const;

function assemble(): Uint8Array {
  const funcs: { name: string; type: number; body: number[] }[] = [];
  for (const dt of DTYPES) {
    for (const op of FOLD_OPS) funcs.push({ name: `fold_${dt}_${op}`, type: 0, body: foldBody(LANE_OPS[dt][op]) });
  }
  funcs.push({ name: "divide_float32", type: 1, body: divideBody("float32") });
  funcs.push({ name: "divide_float64", type: 1, body: divideBody("float64") });
  const types = vec([
    [0x60, ...vec([[I32], [I32], [I32], [I32], [I32]]), 0],
    [0x60, ...vec([[I32], [I32], [F64]]), 0],
  ]);
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, types),
    ...section(3, vec(funcs.map((f) => uleb(f.type)))),
    ...section(5, vec([[0x00, 1]])), // one memory, 1 page to start; grown on demand
    ...section(7, vec([...funcs.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]), [...name("memory"), 0x02, 0]])),
    ...section(10, vec(funcs.map((f) => f.body))),
  ];
  return Uint8Array.from(bytes);
}

// The WebAssembly global is in every Node release we support, but its typings live in lib.dom, which
// this project (like the launcher) does not load. These are the few members used here.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => WasmInstance;
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

type FoldFn = (dst: number, src: number, stride: number, count: number, nbytes: number) => void;
type DivideFn = (dst: number, nbytes: number, divisor: number) => void;

let instance: WasmInstance | undefined;

function kernels(): WasmInstance {
  // Synchronous compile is fine: the module is ~1 KiB and compiled once per process.
  instance ??= new Wasm.Instance(new Wasm.Module(assemble()), {});
  return instance;
}

/**
 * The process's scratch area in wasm memory plus the kernels that work on it. Offsets are byte offsets
 * into `bytes`; callers lay out operands, call fold/divide, and read results back — all synchronously,
 * with no await in between, since every communicator of the process shares this one scratch.
 */
export class ReduceScratch {
  private readonly memory: WasmMemory;
  private readonly folds = new Map<string, FoldFn>();
  private readonly divides = new Map<string, DivideFn>();
  private view: Uint8Array;

  constructor() {
    const exports = kernels().exports;
    this.memory = exports.memory as WasmMemory;
    for (const dt of DTYPES) {
      for (const op of FOLD_OPS) this.folds.set(`${dt}:${op}`, exports[`fold_${dt}_${op}`] as FoldFn);
    }
    this.divides.set("float32", exports.divide_float32 as DivideFn);
    this.divides.set("float64", exports.divide_float64 as DivideFn);
    this.view = new Uint8Array(this.memory.buffer);
  }

  /** The whole scratch as bytes; re-read after `ensure()` (growing detaches the old buffer). */
  get bytes(): Uint8Array {
    return this.view;
  }

  /** Makes the scratch at least `nbytes` long. */
  ensure(nbytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (nbytes <= have) return;
    this.memory.grow(Math.ceil((nbytes - have) / 65536));
    this.view = new Uint8Array(this.memory.buffer);
  }

  /** Left fold of `count` operands laid out at src, src+stride, …, into dst; nbytes rounded up to 16. */
  fold(dtype: DType, op: ReduceOp, dst: number, src: number, stride: number, count: number, nbytes: number): void {
    this.folds.get(`${dtype}:${op === "mean" ? "sum" : op}`)!(dst, src, stride, count, padded(nbytes));
  }

  /** dst /= divisor, lane-wise, for the float types ("mean"). */
  divide(dtype: DType, dst: number, nbytes: number, divisor: number): void {
    if (dtype === "int32") throw new Error("divide is only defined for float32 and float64");
    this.divides.get(dtype)!(dst, padded(nbytes), divisor);
  }
}

let scratch: ReduceScratch | undefined;

/** The process's scratch, grown to at least `nbytes`. */
export function sharedScratch(nbytes: number): ReduceScratch {
  scratch ??= new ReduceScratch();
  scratch.ensure(nbytes);
  return scratch;
}

/** nbytes rounded up to a whole vector. */
export function padded(nbytes: number): number {
  return Math.ceil(nbytes / VECTOR_BYTES) * VECTOR_BYTES;
}
