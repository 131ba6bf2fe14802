// The one options schema: `%%launch` flags, `notebookLauncher()` options and `tslaunch run` flags
// are all read through OPTION_SPECS, and `--help` is printed from it. Adding an option is one entry.
// Names follow Accelerate's `notebook_launcher` (snake_case); kebab-case and camelCase are accepted.
import { parseArgs } from "util";
import { parseArgsStringToArgv } from "string-argv";

export const MIXED_PRECISIONS = ["no", "fp16", "bf16", "fp8"] as const;
export const RDZV_BACKENDS = ["static", "c10d"] as const;
export type MixedPrecision = (typeof MIXED_PRECISIONS)[number];
export type RdzvBackend = (typeof RDZV_BACKENDS)[number];

export const DEFAULT_LOG_LINE_PREFIX_TEMPLATE = "[rank${rank}]: ";

export interface LaunchOptions {
  numProcesses: number | null;
  mixedPrecision: MixedPrecision;
  usePort: string;
  masterAddr: string;
  nodeRank: number;
  numNodes: number;
  rdzvBackend: RdzvBackend;
  rdzvEndpoint: string;
  rdzvConf: Record<string, string>;
  rdzvId: string;
  maxRestarts: number;
  monitorInterval: number;
  logLinePrefixTemplate: string | null;
}

/** A bad option: says what was wrong, what is accepted, and what to do. */
export class OptionError extends Error {
  override name = "OptionError";
  /** What the kernel shows: the message alone; the stack inside tslaunch helps no one. */
  get traceback(): string[] {
    return [`${this.name}: ${this.message}`];
  }
}

type Key = keyof LaunchOptions;

interface OptionSpec<K extends Key = Key> {
  key: K;
  /** Accelerate's spelling, used in flags and messages. */
  flag: string;
  short?: string;
  /** What the value looks like in `--help`. */
  metavar: string;
  help: string;
  example: string;
  default: LaunchOptions[K];
  /** Turns a flag string or an API value into the typed value; throws OptionError. */
  coerce(value: unknown, spec: OptionSpec<K>): LaunchOptions[K];
}

function fail(spec: { flag: string; example: string }, value: unknown, accepted: string): never {
  const shown = typeof value === "string" ? JSON.stringify(value) : String(JSON.stringify(value) ?? value);
  throw new OptionError(`--${spec.flag} must be ${accepted}, got ${shown}. Example: %%launch ${spec.example}`);
}

function positiveInt(value: unknown, spec: OptionSpec): number {
  const n = typeof value === "number" ? value : /^\s*\d+\s*$/.test(String(value)) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1) fail(spec, value, "a positive integer");
  return n;
}

function nonNegativeInt(value: unknown, spec: OptionSpec): number {
  const n = typeof value === "number" ? value : /^\s*\d+\s*$/.test(String(value)) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0) fail(spec, value, "a non-negative integer");
  return n;
}

function choice<T extends string>(choices: readonly T[]) {
  return (value: unknown, spec: OptionSpec): T => {
    const v = String(value).trim().toLowerCase();
    if (typeof value !== "string" || !(choices as readonly string[]).includes(v)) {
      fail(spec, value, `one of ${choices.join(", ")}`);
    }
    return v as T;
  };
}

function text(value: unknown, spec: OptionSpec): string {
  if (typeof value !== "string" && typeof value !== "number") fail(spec, value, "a string");
  return String(value);
}

/** `rdzv_conf`: an object from the API, or `key=value,key=value` from a flag. */
export function parseRdzvConf(value: unknown, spec: { flag: string; example: string }): Record<string, string> {
  if (value === null || value === undefined) return {};
  if (typeof value === "object" && !Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, String(v)]));
  }
  if (typeof value !== "string") fail(spec, value, "key=value pairs separated by commas");
  const out: Record<string, string> = {};
  for (const pair of value.split(",").map((p) => p.trim()).filter(Boolean)) {
    const m = /^([A-Za-z_][\w.-]*)=(.*)$/.exec(pair);
    if (!m) fail(spec, value, `key=value pairs separated by commas (the pair ${JSON.stringify(pair)} has no key=value)`);
    out[m[1]] = m[2];
  }
  return out;
}

export const OPTION_SPECS: OptionSpec[] = [
  {
    key: "numProcesses", flag: "num_processes", short: "n", metavar: "N",
    help: "How many worker processes to start on this node (default: the number of visible accelerators).",
    example: "--num_processes 4", default: null, coerce: positiveInt,
  },
  {
    key: "mixedPrecision", flag: "mixed_precision", metavar: MIXED_PRECISIONS.join("|"),
    help: "Mixed precision for the workers, exported to them as ACCELERATE_MIXED_PRECISION.",
    example: "--mixed_precision bf16", default: "no", coerce: choice(MIXED_PRECISIONS),
  },
  {
    key: "usePort", flag: "use_port", metavar: "PORT",
    help: "The port of the static rendezvous on master_addr (MASTER_PORT).",
    example: "--use_port 29500", default: "29500",
    coerce: (v, spec) => {
      const n = Number(v);
      if (!/^\s*\d+\s*$/.test(String(v)) || n < 1 || n > 65535) fail(spec, v, "a port number from 1 to 65535");
      return String(n);
    },
  },
  {
    key: "masterAddr", flag: "master_addr", metavar: "ADDR",
    help: "Address of node 0 (MASTER_ADDR).", example: "--master_addr 127.0.0.1", default: "127.0.0.1",
    coerce: (v, spec) => {
      const s = text(v, spec).trim();
      if (!s) fail(spec, v, "a host name or IP address");
      return s;
    },
  },
  {
    key: "nodeRank", flag: "node_rank", metavar: "RANK",
    help: "The rank of this node, from 0 to num_nodes - 1.", example: "--node_rank 0", default: 0, coerce: nonNegativeInt,
  },
  {
    key: "numNodes", flag: "num_nodes", metavar: "N",
    help: "How many nodes take part.", example: "--num_nodes 1", default: 1, coerce: positiveInt,
  },
  {
    key: "rdzvBackend", flag: "rdzv_backend", metavar: RDZV_BACKENDS.join("|"),
    help: "Rendezvous method.", example: "--rdzv_backend static", default: "static", coerce: choice(RDZV_BACKENDS),
  },
  {
    key: "rdzvEndpoint", flag: "rdzv_endpoint", metavar: "HOST[:PORT]",
    help: "The c10d rendezvous store's address.", example: "--rdzv_endpoint 127.0.0.1:29400", default: "", coerce: text,
  },
  {
    key: "rdzvConf", flag: "rdzv_conf", metavar: "K=V,...",
    help: "Extra rendezvous settings (join_timeout, last_call_timeout, timeout).",
    example: "--rdzv_conf join_timeout=60,last_call_timeout=5", default: {}, coerce: parseRdzvConf,
  },
  {
    key: "rdzvId", flag: "rdzv_id", metavar: "ID",
    help: "The job's id; keeps concurrent jobs on one rendezvous store apart.", example: "--rdzv_id job1", default: "none", coerce: text,
  },
  {
    key: "maxRestarts", flag: "max_restarts", metavar: "N",
    help: "How many times the worker group is restarted after a failure before the launch fails.",
    example: "--max_restarts 3", default: 0, coerce: nonNegativeInt,
  },
  {
    key: "monitorInterval", flag: "monitor_interval", metavar: "SECONDS",
    help: "How often the agent checks the workers.", example: "--monitor_interval 0.1", default: 0.1,
    coerce: (v, spec) => {
      const n = typeof v === "number" ? v : /^\s*\d*\.?\d+(e-?\d+)?\s*$/i.test(String(v)) ? Number(v) : NaN;
      if (!Number.isFinite(n) || n <= 0) fail(spec, v, "a number of seconds greater than 0");
      return n;
    },
  },
  {
    key: "logLinePrefixTemplate", flag: "log_line_prefix_template", metavar: "TEMPLATE",
    help: "Prefix of every worker line; placeholders ${rank}, ${local_rank}, ${role_name}, ${node_rank}. Default: '[rank${rank}]: '.",
    example: "--log_line_prefix_template '[${rank}] '", default: null,
    coerce: (v, spec) => (v === null ? null : text(v, spec)),
  },
];

const camel = (snake: string) => snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const kebab = (snake: string) => snake.replace(/_/g, "-");

/** Every accepted spelling of every option, mapped to its spec. */
const SPELLINGS = new Map<string, OptionSpec>();
for (const spec of OPTION_SPECS) {
  for (const name of [spec.flag, kebab(spec.flag), camel(spec.flag)]) SPELLINGS.set(name, spec);
}

export function defaultOptions(): LaunchOptions {
  return Object.fromEntries(OPTION_SPECS.map((s) => [s.key, structuredClone(s.default)])) as unknown as LaunchOptions;
}

function checkTogether(o: LaunchOptions): LaunchOptions {
  if (o.nodeRank >= o.numNodes) {
    throw new OptionError(
      `--node_rank must be less than --num_nodes (ranks are 0..${o.numNodes - 1}), got node_rank ${o.nodeRank} with num_nodes ${o.numNodes}. ` +
        `Example: %%launch --num_nodes 2 --node_rank 1`,
    );
  }
  return o;
}

/** Options from the function API (`notebookLauncher(fn, args, { numProcesses: 4 })`). */
export function optionsFromObject(input: Record<string, unknown> = {}): LaunchOptions {
  const out = defaultOptions() as unknown as Record<string, unknown>;
  for (const [name, value] of Object.entries(input)) {
    if (value === undefined) continue;
    const spec = SPELLINGS.get(name);
    if (!spec) {
      throw new OptionError(
        `unknown option ${JSON.stringify(name)}. Accepted: ${OPTION_SPECS.map((s) => camel(s.flag)).join(", ")}.`,
      );
    }
    try {
      out[spec.key] = spec.key === "numProcesses" && value === null ? null : spec.coerce(value, spec);
    } catch (err) {
      throw err instanceof OptionError ? new OptionError(inApiTerms(err.message, spec)) : err;
    }
  }
  try {
    return checkTogether(out as unknown as LaunchOptions);
  } catch (err) {
    if (!(err instanceof OptionError)) throw err;
    throw new OptionError(err.message.replace("--node_rank", "nodeRank").replace("--num_nodes", "numNodes").replace(/ Example: .*$/, " Example: { numNodes: 2, nodeRank: 1 }"));
  }
}

/** The flag-worded message of a spec, said in the function API's words. */
function inApiTerms(message: string, spec: OptionSpec): string {
  const name = camel(spec.flag);
  const raw = spec.example.replace(/^--\S+\s*/, "").replace(/^'(.*)'$/, "$1");
  const value = /^-?\d+(\.\d+)?$/.test(raw) ? raw : spec.key === "rdzvConf" ? "{ join_timeout: 60 }" : JSON.stringify(raw);
  return message
    .replace(`--${spec.flag} must`, `${name} must`)
    .replace(/ Example: %%launch .*$/, ` Example: notebookLauncher(fn, args, { ${name}: ${value} })`);
}

export interface ParsedMagic {
  options: LaunchOptions;
  /** Which options the user gave (others are defaults). */
  given: Set<Key>;
  help: boolean;
}

/** Parses the `%%launch ...` line's flags (without the `%%launch` word). */
export function parseLaunchFlags(line: string): ParsedMagic {
  return parseLaunchArgv(parseArgsStringToArgv(line), `%%launch ${line.trim()}`).parsed;
}

export interface CliFlag {
  type: "string" | "boolean";
  short?: string;
}

/**
 * Parses launch flags from an argv (the magic's line, or `tslaunch run` / `tslaunch agent`).
 * `extra` adds command-only flags; positionals are returned when allowed (the script and its args).
 */
export function parseLaunchArgv(
  argv: string[],
  context: string,
  extra: Record<string, CliFlag> = {},
  allowPositionals = false,
): { parsed: ParsedMagic; extra: Record<string, string | boolean | undefined>; positionals: string[] } {
  const config: Record<string, CliFlag> = { help: { type: "boolean", short: "h" }, ...extra };
  for (const [name, spec] of SPELLINGS) config[name] = { type: "string", ...(name === spec.flag && spec.short ? { short: spec.short } : {}) };
  let values: Record<string, unknown>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: config, strict: true, allowPositionals }));
  } catch (err) {
    throw new OptionError(explainParseError(err as Error & { code?: string }, context));
  }
  const options = defaultOptions() as unknown as Record<string, unknown>;
  const given = new Set<Key>();
  const extraValues: Record<string, string | boolean | undefined> = {};
  for (const [name, value] of Object.entries(values)) {
    if (name === "help") continue;
    if (name in extra) {
      extraValues[name] = value as string | boolean;
      continue;
    }
    const spec = SPELLINGS.get(name)!;
    options[spec.key] = spec.coerce(value, spec);
    given.add(spec.key);
  }
  return {
    parsed: { options: checkTogether(options as unknown as LaunchOptions), given, help: values.help === true },
    extra: extraValues,
    positionals,
  };
}

function explainParseError(err: Error & { code?: string }, context: string): string {
  const known = OPTION_SPECS.map((s) => `--${s.flag}${s.short ? ` (-${s.short})` : ""}`).join(", ");
  if (err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const m = /'([^']+)'/.exec(err.message);
    return `unknown flag ${m ? m[1] : ""} in "${context}". Accepted flags: ${known}. See %%launch --help.`;
  }
  if (err.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    const m = /'([^']+)'/.exec(err.message);
    return `flag ${m ? m[1] : ""} needs a value. Example: %%launch --num_processes 4. See %%launch --help.`;
  }
  if (err.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    const m = /'([^']*)'/.exec(err.message);
    return `unexpected argument ${m ? JSON.stringify(m[1]) : ""} in "${context}": every value follows a flag, e.g. %%launch --num_processes 4. See %%launch --help.`;
  }
  return `${err.message}. See %%launch --help.`;
}

export function launchHelp(): string {
  const rows = OPTION_SPECS.map((s) => {
    const names = `${s.short ? `-${s.short}, ` : ""}--${s.flag} ${s.metavar}`;
    const def = s.default === null || (typeof s.default === "object" && Object.keys(s.default as object).length === 0) ? "" : ` (default: ${JSON.stringify(s.default)})`;
    return `  ${names.padEnd(46)} ${s.help}${def}`;
  });
  return [
    "Usage: %%launch [flags]",
    "       <cell body: TypeScript run in every worker process>",
    "",
    "Runs the cell body in N worker processes; every rank replays the session's earlier cells first.",
    "Flags (Accelerate's notebook_launcher names; kebab-case accepted too):",
    ...rows,
    "  -h, --help                                     Show this help.",
    "",
    "Example: %%launch --num_processes 4 --mixed_precision bf16",
  ].join("\n");
}

/** For completion and inspection. */
export function allFlagSpellings(): { flag: string; spec: OptionSpec }[] {
  return OPTION_SPECS.flatMap((spec) => [
    { flag: `--${spec.flag}`, spec },
    ...(spec.short ? [{ flag: `-${spec.short}`, spec }] : []),
  ]);
}
