import { describe, expect, it } from "vitest";
import { launchHelp, OptionError, optionsFromObject, parseLaunchFlags, OPTION_SPECS } from "../../launcher/contract";

describe("%%launch flags", () => {
  it("reads --num_processes, -n, kebab-case and = forms", () => {
    expect(parseLaunchFlags("--num_processes 4").options.numProcesses).toBe(4);
    expect(parseLaunchFlags("-n 3").options.numProcesses).toBe(3);
    expect(parseLaunchFlags("--num-processes=2").options.numProcesses).toBe(2);
    expect(parseLaunchFlags("-n 2").given.has("numProcesses")).toBe(true);
  });

  it("keeps a quoted prefix template with spaces and placeholders as written", () => {
    const { options } = parseLaunchFlags(`-n 2 --log_line_prefix_template "[\${rank}/\${local_rank}] "`);
    expect(options.logLinePrefixTemplate).toBe("[${rank}/${local_rank}] ");
  });

  it("has Accelerate's defaults when no flag is given", () => {
    const { options, given } = parseLaunchFlags("");
    expect(given.size).toBe(0);
    expect(options).toMatchObject({
      numProcesses: null, mixedPrecision: "no", usePort: "29500", masterAddr: "127.0.0.1", nodeRank: 0, numNodes: 1,
      rdzvBackend: "static", rdzvEndpoint: "", rdzvConf: {}, rdzvId: "none", maxRestarts: 0, monitorInterval: 0.1, logLinePrefixTemplate: null,
    });
  });

  it("rejects an unknown flag, listing the accepted ones", () => {
    expect(() => parseLaunchFlags("--bogus 3")).toThrow(OptionError);
    expect(() => parseLaunchFlags("--bogus 3")).toThrow(/unknown flag --bogus.*--num_processes \(-n\).*--mixed_precision/);
  });

  it("says what was wrong, what is accepted and gives an example for a bad count", () => {
    expect(() => parseLaunchFlags("--num_processes two")).toThrow(
      '--num_processes must be a positive integer, got "two". Example: %%launch --num_processes 4',
    );
    expect(() => parseLaunchFlags("-n 0")).toThrow(/positive integer, got "0"/);
    expect(() => parseLaunchFlags("-n 1.5")).toThrow(/positive integer/);
  });

  it("rejects a flag without its value", () => {
    expect(() => parseLaunchFlags("--num_processes")).toThrow(/needs a value/);
  });

  it("rejects a stray positional argument", () => {
    expect(() => parseLaunchFlags("4")).toThrow(/unexpected argument "4"/);
  });

  it("lists the precisions for an unknown one, case-insensitively accepting known ones", () => {
    expect(parseLaunchFlags("--mixed_precision BF16").options.mixedPrecision).toBe("bf16");
    expect(() => parseLaunchFlags("--mixed_precision fp64")).toThrow(/one of no, fp16, bf16, fp8, got "fp64"/);
  });

  it("validates ports, intervals, restarts, node ranks and rendezvous settings", () => {
    expect(() => parseLaunchFlags("--use_port 70000")).toThrow(/port number from 1 to 65535/);
    expect(() => parseLaunchFlags("--monitor_interval 0")).toThrow(/greater than 0/);
    expect(() => parseLaunchFlags("--max_restarts -1")).toThrow();
    expect(() => parseLaunchFlags("--num_nodes 2 --node_rank 2")).toThrow(/node_rank must be less than --num_nodes/);
    expect(() => parseLaunchFlags("--rdzv_backend zookeeper")).toThrow(/one of static, c10d, etcd, etcd-v2/);
    expect(parseLaunchFlags("--rdzv_backend etcd-v2").options.rdzvBackend).toBe("etcd-v2");
    expect(() => parseLaunchFlags("--rdzv_conf lease_ttl=0")).toThrow(/lease_ttl is a number of seconds greater than 0/);
    expect(parseLaunchFlags("--rdzv_conf join_timeout=60,last_call_timeout=5").options.rdzvConf).toEqual({ join_timeout: "60", last_call_timeout: "5" });
    expect(() => parseLaunchFlags("--rdzv_conf join_timeout")).toThrow(/key=value/);
  });

  it("prints help naming every option", () => {
    const help = launchHelp();
    for (const spec of OPTION_SPECS) expect(help).toContain(`--${spec.flag}`);
    expect(parseLaunchFlags("--help").help).toBe(true);
    expect(parseLaunchFlags("-h").help).toBe(true);
  });
});

describe("function API options", () => {
  it("accepts camelCase and snake_case", () => {
    expect(optionsFromObject({ numProcesses: 2, mixed_precision: "fp16" })).toMatchObject({ numProcesses: 2, mixedPrecision: "fp16" });
  });

  it("names the unknown option and the accepted ones", () => {
    expect(() => optionsFromObject({ numProcess: 2 })).toThrow(/unknown option "numProcess". Accepted: numProcesses, mixedPrecision/);
  });

  it("takes rdzv_conf as an object", () => {
    expect(optionsFromObject({ rdzvConf: { join_timeout: 5 } }).rdzvConf).toEqual({ join_timeout: "5" });
  });
});
