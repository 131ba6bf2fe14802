// The one shared-memory segment of a node's local group: a small control area (header, step
// counters, descriptors) and a fixed staging area per rank. Its size is bounded by
// localSize × 2 × stagingBytes whatever the array sizes: large arrays are chunked through it.
//
// Lifetime: the node's leader creates it before the connect-time exchange; the others map it after;
// once everyone reported "mapped" the leader unlinks the name. From then on nothing in /dev/shm
// outlives the ranks, even a SIGKILLed one (the kernel frees the memory with the last mapping).
import { readdirSync, unlinkSync } from "node:fs";
import { mapShared, type Mapping } from "./libc";
import { DESCRIPTOR_WORDS } from "./descriptor";
import { SLOT_BYTES } from "./progress";

const MAGIC = 0x54534c43; // "TSLC"
const VERSION = 1;
const HEADER_BYTES = 128;
const PAGE = 4096;

export interface SegmentLayout {
  localSize: number;
  stagingBytes: number;
  slotsAt: number;
  descriptorsAt: number;
  stagingAt: number;
  totalBytes: number;
}

export function segmentLayout(localSize: number, stagingBytes: number): SegmentLayout {
  const slotsAt = HEADER_BYTES;
  const descriptorsAt = slotsAt + localSize * SLOT_BYTES;
  const descriptorBytes = 2 * localSize * DESCRIPTOR_WORDS * 4; // two parities: see LocalGroup.step
  const stagingAt = Math.ceil((descriptorsAt + descriptorBytes) / PAGE) * PAGE;
  return {
    localSize,
    stagingBytes,
    slotsAt,
    descriptorsAt,
    stagingAt,
    totalBytes: stagingAt + localSize * 2 * stagingBytes,
  };
}

/** "/<prefix>-node<n>": segmentPrefix is per launch attempt; the node index keeps loopback "nodes" apart. */
export function segmentName(segmentPrefix: string, nodeIndex: number): string {
  return `/${segmentPrefix}-node${nodeIndex}`;
}

export function createSegment(name: string, layout: SegmentLayout): Mapping {
  const m = mapShared(name, layout.totalBytes, true);
  const words = new Int32Array(m.buffer, 0, HEADER_BYTES / 4);
  words[1] = VERSION;
  words[2] = layout.localSize;
  words[3] = layout.stagingBytes;
  Atomics.store(words, 0, MAGIC); // last: a reader that sees the magic sees the rest
  return m;
}

export function openSegment(name: string, layout: SegmentLayout): Mapping {
  const m = mapShared(name, layout.totalBytes, false);
  const words = new Int32Array(m.buffer, 0, HEADER_BYTES / 4);
  if (Atomics.load(words, 0) !== MAGIC || words[1] !== VERSION || words[2] !== layout.localSize || words[3] !== layout.stagingBytes) {
    m.unmap();
    throw new Error(
      `shared-memory segment ${name} does not match this rank's layout (header ${[...words.slice(0, 4)].join(",")}, ` +
        `expected ${MAGIC},${VERSION},${layout.localSize},${layout.stagingBytes}): ranks of one node run different versions?`,
    );
  }
  return m;
}

/** Safety net for the launcher: removes every /dev/shm entry whose name starts with segmentPrefix. */
export function removeSegments(segmentPrefix: string): void {
  const prefix = segmentPrefix.replace(/^\/+/, "");
  if (prefix === "") throw new Error("removeSegments needs a non-empty segmentPrefix (it would remove every segment)");
  let names: string[];
  try {
    names = readdirSync("/dev/shm");
  } catch {
    return; // no /dev/shm (not Linux): nothing of ours can be there
  }
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    try {
      unlinkSync(`/dev/shm/${n}`);
    } catch {
      // already gone (a rank unlinked it concurrently)
    }
  }
}
