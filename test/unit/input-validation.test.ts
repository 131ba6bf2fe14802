import os from "os";
import path from "path";
import { describe, expect, it } from "vitest";
import { OptionError, optionsFromObject, parseLaunchFlags, UsageError } from "../../launcher/contract";
import { maxProcessesPerNode, resolveNumProcesses } from "../../launcher/devices";
import { runLaunch } from "../../launcher/api";

describe("flags a careless user types", () => {
  it("an unbalanced quote is refused, naming the quote, instead of swallowing the flags after it", () => {
    expect(() => parseLaunchFlags('-n 2 --log_line_prefix_template "[x] ')).toThrow(/unbalanced double quote/);
    expect(() => parseLaunchFlags("-n 2 --log_line_prefix_template '[x] ")).toThrow(/unbalanced single quote/);
    expect(parseLaunchFlags(`-n 2 --log_line_prefix_template "[\${rank}] "`).options.logLinePrefixTemplate).toBe("[${rank}] ");
  });

  it("-n -1 says what is accepted (not that the flag needs a value)", () => {
    expect(() => parseLaunchFlags("-n -1")).toThrow(/^--num_processes must be a positive integer, got "-1"\. Example: %%launch --num_processes 4$/);
    expect(() => parseLaunchFlags("--max_restarts -2")).toThrow(/--max_restarts must be a non-negative integer, got "-2"/);
  });

  it("a bad rdzv_conf value is refused where it is given, on every node", () => {
    expect(() => parseLaunchFlags("--rdzv_conf timeout=abc")).toThrow(/--rdzv_conf must be key=value pairs where timeout is a number of seconds greater than 0, got "timeout=abc"/);
    expect(() => optionsFromObject({ rdzvConf: { join_timeout: -1 } })).toThrow(/^rdzvConf must be key=value pairs where join_timeout is a number of seconds greater than 0/);
    expect(parseLaunchFlags("--rdzv_conf timeout=2.5,other=x").options.rdzvConf).toEqual({ timeout: "2.5", other: "x" });
  });

  it("-n far beyond this machine is refused with the limit and how to raise it", () => {
    const max = maxProcessesPerNode({});
    expect(max).toBe(Math.max(64, 8 * os.cpus().length));
    const options = parseLaunchFlags(`-n ${max + 1}`).options;
    expect(() => resolveNumProcesses(options)).toThrow(OptionError);
    expect(() => resolveNumProcesses(options)).toThrow(new RegExp(`--num_processes ${max + 1} is more worker processes than this machine should start \\(at most ${max}.*TSLAUNCH_MAX_PROCESSES`));
    expect(() => resolveNumProcesses(parseLaunchFlags("-n 1000000000").options, "api")).toThrow(/^numProcesses 1000000000 is more/);
    expect(resolveNumProcesses(parseLaunchFlags(`-n ${max}`).options)).toBe(max);
  });

  it("a folder that no longer exists is named, and nothing starts", async () => {
    const gone = path.join(os.tmpdir(), "tslaunch-test-no-such-folder-" + process.pid);
    const events: unknown[] = [];
    const err = await runLaunch(parseLaunchFlags("-n 2").options, { cwd: gone, replay: [], body: { executionCount: 1, js: "1", async: false, jsLineToCellLine: [] } }, {
      onEvent: (e) => events.push(e),
      setActive: () => {},
    }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toContain(`the folder the workers start in, ${gone}, no longer exists`);
    expect(events).toEqual([]);
  });
});
