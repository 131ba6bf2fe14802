// What each rank says it is calling, for every collective: kind, dtype, length, op, root and sequence
// number. Ranks publish it at arrival (shared memory within a node, signed TCP across nodes) and every
// rank checks the whole table before moving data, so a mismatch is an error on every rank, not a hang.
import { CollectiveError, rankList } from "./errors";
import type { DType, ReduceOp } from "./reduce-kernels";

export const KINDS = [
  "barrier",
  "allReduce",
  "broadcast",
  "allGather",
  "reduceScatter",
  "broadcastObject",
  "gatherObject",
] as const;
export type Kind = (typeof KINDS)[number];

export const DTYPES: DType[] = ["float32", "float64", "int32"];
export const OPS: ReduceOp[] = ["sum", "mean", "max", "min", "product"];

export interface Descriptor {
  kind: Kind;
  /** null for kinds without an array (barrier, objects). */
  dtype: DType | null;
  /** Elements for arrays; serialized bytes for objects (allowed to differ across ranks). */
  count: number;
  op: ReduceOp | null;
  /** Root rank for broadcasts, else -1. */
  src: number;
  seq: number;
}

/** Descriptors travel as 8 int32 words (32 bytes). */
export const DESCRIPTOR_WORDS = 8;

export function encodeDescriptor(d: Descriptor, out: Int32Array, at = 0): void {
  out[at] = KINDS.indexOf(d.kind);
  out[at + 1] = d.dtype === null ? -1 : DTYPES.indexOf(d.dtype);
  out[at + 2] = d.count % 2 ** 32 | 0; // low and high halves: object payloads may pass 2 GiB
  out[at + 3] = Math.floor(d.count / 2 ** 32);
  out[at + 4] = d.op === null ? -1 : OPS.indexOf(d.op);
  out[at + 5] = d.src;
  out[at + 6] = d.seq | 0;
  out[at + 7] = 0;
}

export function decodeDescriptor(words: Int32Array, at = 0): Descriptor {
  const kind = KINDS[words[at]];
  if (kind === undefined) throw new Error(`corrupt collective descriptor (kind ${words[at]})`);
  return {
    kind,
    dtype: words[at + 1] < 0 ? null : DTYPES[words[at + 1]],
    count: (words[at + 2] >>> 0) + words[at + 3] * 2 ** 32,
    op: words[at + 4] < 0 ? null : OPS[words[at + 4]],
    src: words[at + 5],
    seq: words[at + 6],
  };
}

/** Object collectives carry per-rank payload sizes in `count`; those may differ, everything else may not. */
function countMustMatch(kind: Kind): boolean {
  return kind !== "broadcastObject" && kind !== "gatherObject" && kind !== "barrier";
}

function sameCall(a: Descriptor, b: Descriptor): boolean {
  return (
    a.kind === b.kind &&
    a.dtype === b.dtype &&
    a.op === b.op &&
    a.src === b.src &&
    a.seq === b.seq &&
    (!countMustMatch(a.kind) || a.count === b.count)
  );
}

export function describeCall(d: Descriptor): string {
  const parts: string[] = [`#${d.seq} ${d.kind}`];
  if (d.dtype !== null) parts.push(`${d.dtype}[${d.count}]`);
  if (d.op !== null) parts.push(`op=${d.op}`);
  if (d.src >= 0) parts.push(`src=${d.src}`);
  return parts.join(" ");
}

/**
 * Throws a CollectiveError (identical text on every rank, since every rank sees the same table) when
 * the ranks' descriptors for this collective differ.
 */
export function checkAgreement(table: Descriptor[], mine: Descriptor): void {
  const first = table[0];
  if (table.every((d) => sameCall(d, first))) return;
  // Group ranks by what they called, so 64 ranks with one odd one out read as two lines.
  const groups = new Map<string, number[]>();
  table.forEach((d, rank) => {
    const key = describeCall(d);
    groups.set(key, [...(groups.get(key) ?? []), rank]);
  });
  const lines = [...groups].map(([call, ranks]) => `${rankList(ranks)}: ${call}`);
  const dissenting = [...groups.values()].sort((a, b) => a.length - b.length)[0];
  throw new CollectiveError(
    `${mine.kind} #${mine.seq}: the ranks called different collectives (${lines.join("; ")}). ` +
      `Every rank must make the same collective calls in the same order, with the same dtype, length, op and src.`,
    mine.kind,
    mine.seq,
    dissenting,
    true,
  );
}
