import { describe, expect, it } from "vitest";
import { defaultComm, resolveComm } from "../../launcher/tfjs/comm";
import { simulatedComms } from "../fixtures/tfjs/simulated-comm";

describe("defaultComm", () => {
  it("maps tslaunch's allReduce, broadcast and state, reading rank and size on each access", () => {
    const state = { processIndex: 1, numProcesses: 2 };
    const allReduce = async <T>(x: T) => x;
    const broadcast = async <T>(x: T) => x;
    const comm = defaultComm(() => ({ allReduce, broadcast, state }));
    expect(comm.allReduce).toBe(allReduce);
    expect(comm.broadcast).toBe(broadcast);
    expect([comm.rank, comm.worldSize]).toEqual([1, 2]);
    state.processIndex = 0;
    expect(comm.rank).toBe(0);
  });

  it("defaults to this package's own collectives (outside a launch: one process, rank 0)", async () => {
    const comm = defaultComm();
    expect([comm.rank, comm.worldSize]).toEqual([0, 1]);
    const x = new Float32Array([1, 2]);
    expect(await comm.allReduce(x, "mean")).toBe(x);
  });

  it("explains what to do when the collectives cannot be loaded", () => {
    expect(() => defaultComm(() => { throw new Error("Cannot find module 'tslaunch'"); })).toThrow(/no `comm` was passed and the "tslaunch" package could not be loaded.*pass \{ comm: \{ allReduce, broadcast, rank, worldSize \} \}/s);
  });

  it("names what an old tslaunch lacks", () => {
    expect(() => defaultComm(() => ({ state: {} }))).toThrow(/lacks allReduce\(\), broadcast\(\)/);
  });
});

describe("resolveComm", () => {
  const fns = { allReduce: async <T>(x: T) => x, broadcast: async <T>(x: T) => x };
  it("rejects a bad rank or world size with the accepted range", () => {
    expect(() => resolveComm({ ...fns, rank: 2, worldSize: 2 } as never, "f")).toThrow("f: comm.rank must be an integer in [0, 1], got 2");
    expect(() => resolveComm({ ...fns, rank: 0, worldSize: 0 } as never, "f")).toThrow("f: comm.worldSize must be an integer >= 1, got 0");
  });
});

describe("simulatedComms (the test double)", () => {
  it("all-reduces once all ranks arrive, giving every rank the same values", async () => {
    const [a, b] = simulatedComms(2);
    const xa = new Float32Array([1, 2, 0.1]);
    const xb = new Float32Array([3, 6, 0.2]);
    const [ra, rb] = await Promise.all([a.allReduce(xa, "mean"), b.allReduce(xb, "mean")]);
    expect(ra).toBe(xa); // in place
    expect(Array.from(xa)).toEqual(Array.from(new Float32Array([2, 4, 0.15000000000000002])));
    expect(rb).toEqual(ra);
    const ints = [new Int32Array([5, -1]), new Int32Array([2, 7])];
    await Promise.all([a.allReduce(ints[0], "max"), b.allReduce(ints[1], "max")]);
    expect(Array.from(ints[1])).toEqual([5, 7]);
  });

  it("broadcasts from src", async () => {
    const comms = simulatedComms(3);
    const xs = [0, 1, 2].map((r) => new Float64Array([r, r * 10]));
    await Promise.all(comms.map((c, r) => c.broadcast(xs[r], 2)));
    expect(xs.map((x) => Array.from(x))).toEqual([[2, 20], [2, 20], [2, 20]]);
  });

  it("reports ranks that make different collective calls instead of hanging", async () => {
    const [a, b] = simulatedComms(2);
    const results = await Promise.allSettled([a.allReduce(new Float32Array(2)), b.broadcast(new Float32Array(2))]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect((results[0] as PromiseRejectedResult).reason.message).toMatch(/ranks made different calls/);
  });
});
