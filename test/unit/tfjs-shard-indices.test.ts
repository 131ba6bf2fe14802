import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { MT19937, torchRandperm } from "../../launcher/tfjs/mt19937";
import { shardIndices, ShardOptions } from "../../launcher/tfjs/shard-indices";

const allRanks = (total: number, o: Omit<ShardOptions, "rank">) =>
  Array.from({ length: o.worldSize }, (_, rank) => shardIndices(total, { ...o, rank }));

describe("shardIndices: hand-computed DistributedSampler results", () => {
  it("pads from the start and strides: total 10, worldSize 3", () => {
    // num_samples = ceil(10/3) = 4, total_size = 12, indices = [0..9, 0, 1], rank r takes [r::3]
    expect(allRanks(10, { worldSize: 3 })).toEqual([
      [0, 3, 6, 9],
      [1, 4, 7, 0],
      [2, 5, 8, 1],
    ]);
  });

  it("dropLast truncates to floor(total / worldSize) per rank", () => {
    // total_size = 9, indices = [0..8]
    expect(allRanks(10, { worldSize: 3, dropLast: true })).toEqual([
      [0, 3, 6],
      [1, 4, 7],
      [2, 5, 8],
    ]);
    // fewer samples than ranks: nothing for anyone
    expect(allRanks(3, { worldSize: 4, dropLast: true })).toEqual([[], [], [], []]);
  });

  it("wraps the padding when it exceeds the list (worldSize > total)", () => {
    // total 2, worldSize 5: padding 3 > 2, so (indices * ceil(3/2))[:3] = [0, 1, 0]
    expect(allRanks(2, { worldSize: 5 })).toEqual([[0], [1], [0], [1], [0]]);
    // total 3, worldSize 8: padding 5 -> [0,1,2,0,1,2][:5]; full list [0,1,2,0,1,2,0,1]
    expect(allRanks(3, { worldSize: 8 }).flat()).toEqual([0, 1, 2, 0, 1, 2, 0, 1]);
  });

  it("shuffles with torch's permutation for seed + epoch", () => {
    // torch.randperm(10, generator=torch.Generator().manual_seed(0)) == [4,1,7,5,3,9,0,8,6,2]
    expect(allRanks(10, { worldSize: 2, shuffle: true })).toEqual([
      [4, 7, 3, 0, 6],
      [1, 5, 9, 8, 2],
    ]);
    // set_epoch(e) seeds with seed + e: seed 40, epoch 2 is seed 42 -> randperm(7) == [1,6,3,5,4,0,2]
    expect(shardIndices(7, { rank: 0, worldSize: 1, shuffle: true, seed: 40, epoch: 2 })).toEqual([1, 6, 3, 5, 4, 0, 2]);
  });

  it("edge cases: empty dataset, one rank", () => {
    expect(allRanks(0, { worldSize: 3 })).toEqual([[], [], []]);
    expect(shardIndices(4, { rank: 0, worldSize: 1 })).toEqual([0, 1, 2, 3]);
  });
});

describe("shardIndices: properties", () => {
  it("covers every index exactly once when total divides evenly (shuffled or not)", () => {
    for (const shuffle of [false, true]) {
      for (const worldSize of [1, 2, 4, 8]) {
        const shards = allRanks(64, { worldSize, shuffle, seed: 7, epoch: 3 });
        expect(new Set(shards.map((s) => s.length))).toEqual(new Set([64 / worldSize]));
        expect(shards.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 64 }, (_, i) => i));
      }
    }
  });

  it("is deterministic, and differs across epochs and seeds", () => {
    const a = shardIndices(100, { rank: 1, worldSize: 4, shuffle: true, seed: 3, epoch: 1 });
    expect(shardIndices(100, { rank: 1, worldSize: 4, shuffle: true, seed: 3, epoch: 1 })).toEqual(a);
    expect(shardIndices(100, { rank: 1, worldSize: 4, shuffle: true, seed: 3, epoch: 2 })).not.toEqual(a);
    expect(shardIndices(100, { rank: 1, worldSize: 4, shuffle: true, seed: 4, epoch: 1 })).not.toEqual(a);
  });

  it("gives every rank the same count, padded or dropped", () => {
    for (const dropLast of [false, true]) {
      const lengths = allRanks(11, { worldSize: 4, dropLast }).map((s) => s.length);
      expect(lengths).toEqual(dropLast ? [2, 2, 2, 2] : [3, 3, 3, 3]);
    }
  });
});

describe("shardIndices: matches torch's DistributedSampler output", () => {
  // Written by test/fixtures/tfjs/make-torch-fixtures.py with torch's own DistributedSampler.
  const fixture = JSON.parse(
    readFileSync(path.join(__dirname, "..", "fixtures", "tfjs", "torch-distributed-sampler.json"), "utf8"),
  ) as { torch: string; cases: (Required<ShardOptions> & { total: number; indices: number[] })[] };

  it(`agrees on all ${fixture.cases.length} cases (torch ${fixture.torch})`, () => {
    const mismatches = fixture.cases.filter(({ total, indices, ...o }) => {
      return JSON.stringify(shardIndices(total, o)) !== JSON.stringify(indices);
    });
    expect(mismatches).toEqual([]);
    expect(fixture.cases.some((c) => c.shuffle && c.total > 1)).toBe(true);
  });
});

describe("MT19937", () => {
  it("produces the reference sequence (C reference, default seed 5489)", () => {
    const g = new MT19937(5489);
    expect([g.nextUint32(), g.nextUint32(), g.nextUint32()]).toEqual([3499211612, 581869302, 3890346734]);
    // the 10000th output for seed 5489 is 4123659995 (C++ std::mt19937 requirement)
    const h = new MT19937(5489);
    let v = 0;
    for (let i = 0; i < 10000; i++) v = h.nextUint32();
    expect(v).toBe(4123659995);
  });

  it("torchRandperm handles n = 0 and 1", () => {
    expect(torchRandperm(0, 1)).toEqual([]);
    expect(torchRandperm(1, 1)).toEqual([0]);
  });
});

describe("shardIndices: input validation", () => {
  const ok = { rank: 0, worldSize: 2 };
  it.each([
    [-1, ok, /total must be a non-negative integer/],
    [1.5, ok, /total must be a non-negative integer/],
    [10, { rank: 0, worldSize: 0 }, /worldSize must be an integer >= 1/],
    [10, { rank: 2, worldSize: 2 }, /rank must be an integer in \[0, 1\] for worldSize 2, got 2/],
    [10, { rank: -1, worldSize: 2 }, /rank must be an integer in \[0, 1\]/],
    [10, { ...ok, seed: 0.5 }, /seed must be an integer/],
    [10, { ...ok, epoch: NaN }, /epoch must be an integer/],
    [10, { ...ok, shuffle: "yes" }, /shuffle must be true or false/],
    [10, { ...ok, drop_last: true }, /unknown option "drop_last"; accepted options: rank, worldSize/],
    [10, undefined, /second argument must be an options object/],
  ])("rejects total=%s options=%o", (total, options, message) => {
    expect(() => shardIndices(total as number, options as unknown as ShardOptions)).toThrow(message);
  });
});
