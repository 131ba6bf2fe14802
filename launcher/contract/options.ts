// The one options schema: `%%launch` flags, `notebookLauncher()` options and `tslaunch run` flags
// are all read through OPTION_SPECS, and `--help` is printed from it. Adding an option is one entry.
// Names follow Accelerate's `notebook_launcher` (snake_case); kebab-case and camelCase are accepted.
// Every message names the option and its example in the words of the surface it came from (a
// `%%launch` flag, a `notebookLauncher` option, a `tslaunch run` flag), generated from the spec.
import { parseArgs } from "util";
import { parseArgsStringToArgv } from "string-argv";
import { OptionError } from "./errors";

/** Where options come from; messages and examples are worded for it. */
export type Surface = "magic" | "api" | "cli";

export const MIXED_PRECISIONS = ["no", "fp16", "bf16", "fp8"] as const;
export const RDZV_BACKENDS = ["static", "c10d", "etcd", "etcd-v2"] as const;
export type MixedPrecision = (typeof MIXED_PRECISIONS)[number];
export type RdzvBackend = (typeof RDZV_BACKENDS)[number];

export const DEFAULT_LOG_LINE_PREFIX_TEMPLATE = "[rank${rank}]: ";

export interface LaunchOptions {
  numProcesses: number | null;
  mixedPrecision: MixedPrecision;
  usePort: string;
  masterAddr: string;
  nodeRank: number;
  /** The most nodes (num_nodes N, or MAX of MIN:MAX). */
  numNodes: number;
  /** MIN of `--num_nodes MIN:MAX` (null: exactly numNodes). Not a flag of its own. */
  minNodes?: number | null;
  rdzvBackend: RdzvBackend;
  rdzvEndpoint: string;
  rdzvConf: Record<string, string>;
  rdzvId: string;
  maxRestarts: number;
  monitorInterval: number;
  logLinePrefixTemplate: string | null;
  /** Seconds a collective waits for every rank before it fails (torch's init_process_group timeout). */
  collectiveTimeout: number;
  /** torchrun's --log_dir: every rank's stdout.log / stderr.log under DIR/<rdzv_id>/attempt_<n>/<rank>/ ("": none). */
  logDir: string;
  /** torchrun's --redirects: which streams of which local ranks go to the files only, not the cell. */
  redirects: StdSpec;
  /** torchrun's --tee: which streams of which local ranks go to the files and the cell. */
  tee: StdSpec;
  /** torchrun's --local_ranks_filter: the local ranks whose output the cell shows (null: all). */
  localRanksFilter: number[] | null;
  /** Bytes of the ranks' output a cell shows before the rest goes to log files only (0: no limit; null: the host's default). */
  outputLimit: number | null;
}

/**
 * torch's Std: 0 none, 1 stdout, 2 stderr, 3 both; one value for every local rank, or per local
 * rank (`0:1,1:2`, ranks not named: 0).
 */
export interface StdSpec {
  all: 0 | 1 | 2 | 3;
  byLocalRank: Record<number, 0 | 1 | 2 | 3>;
}

/** Whether `spec` includes stream `name` of local rank `localRank`. */
export function stdIncludes(spec: StdSpec, localRank: number, name: "stdout" | "stderr"): boolean {
  const v = spec.byLocalRank[localRank] ?? spec.all;
  return (v & (name === "stdout" ? 1 : 2)) !== 0;
}

function stdSpec(value: unknown, spec: OptionSpec): StdSpec {
  const accepted = "0 (none), 1 (stdout), 2 (stderr) or 3 (both), or per local rank like 0:1,1:2";
  if (typeof value === "number" && [0, 1, 2, 3].includes(value)) return { all: value as 0 | 1 | 2 | 3, byLocalRank: {} };
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    value = Object.entries(value).map(([k, v]) => `${k}:${v}`).join(",");
  }
  const s = typeof value === "string" ? value.trim() : "";
  if (/^[0-3]$/.test(s)) return { all: Number(s) as 0 | 1 | 2 | 3, byLocalRank: {} };
  if (!/^\d+:[0-3](,\s*\d+:[0-3])*$/.test(s)) fail(spec, value, accepted);
  const byLocalRank: Record<number, 0 | 1 | 2 | 3> = {};
  for (const pair of s.split(",")) {
    const [rank, v] = pair.trim().split(":").map(Number);
    byLocalRank[rank] = v as 0 | 1 | 2 | 3;
  }
  return { all: 0, byLocalRank };
}

/** A size in bytes: 4000000, "4MB", "512kb", "1.5G"; 0 means no limit. */
export function parseBytes(value: unknown, spec: OptionSpec): number | null {
  if (value === null || value === undefined) return null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(k|kb|m|mb|g|gb)?\s*$/i.exec(String(value));
  if (!m || (typeof value !== "number" && typeof value !== "string")) fail(spec, value, "a size in bytes, like 4000000 or 4MB (0: no limit)");
  const unit = (m[2] ?? "").toLowerCase()[0];
  return Math.round(Number(m[1]) * (unit === "k" ? 1e3 : unit === "m" ? 1e6 : unit === "g" ? 1e9 : 1));
}

function rankList(value: unknown, spec: OptionSpec): number[] | null {
  if (value === null || value === undefined || value === "") return null;
  const list = Array.isArray(value) ? value : typeof value === "number" ? [value] : String(value).split(",").map((p) => p.trim());
  const ranks = list.map((v) => (typeof v === "number" ? v : /^\d+$/.test(String(v)) ? Number(v) : NaN));
  if (ranks.length === 0 || ranks.some((r) => !Number.isInteger(r) || r < 0)) fail(spec, value, "local ranks separated by commas, like 0,2");
  return [...new Set(ranks)].sort((a, b) => a - b);
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
  /** A typical value, as the function API takes it; flag and API examples are made from it. */
  example: string | number | Record<string, string | number>;
  default: LaunchOptions[K];
  /** Turns a flag string or an API value into the typed value; throws InvalidValue. */
  coerce(value: unknown, spec: OptionSpec<K>): LaunchOptions[K];
}

export type { OptionSpec };

/** A value a spec refused; worded for its surface where the parse began (optionError). */
class InvalidValue {
  constructor(readonly spec: OptionSpec, readonly value: unknown, readonly accepted: string) {}
}

function fail(spec: OptionSpec, value: unknown, accepted: string): never {
  throw new InvalidValue(spec, value, accepted);
}

const camel = (snake: string) => snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const kebab = (snake: string) => snake.replace(/_/g, "-");

/** The option's name on a surface: `--num_processes` or `numProcesses`. */
export function optionName(spec: Pick<OptionSpec, "flag">, surface: Surface): string {
  return surface === "api" ? camel(spec.flag) : `--${spec.flag}`;
}

/** The example value as a flag's value: quoted when the shell-like split would break it. */
function flagValue(example: OptionSpec["example"]): string {
  if (typeof example === "object") return Object.entries(example).map(([k, v]) => `${k}=${v}`).join(",");
  const s = String(example);
  return /[\s'"$]/.test(s) ? `'${s}'` : s;
}

/** The command that starts a launch on a surface, with these flags / options. */
export function surfaceExample(surface: Surface, specs: OptionSpec[]): string {
  if (surface === "api") {
    const fields = specs.map((s) => `${camel(s.flag)}: ${typeof s.example === "object" ? `{ ${Object.entries(s.example).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(", ")} }` : JSON.stringify(s.example)}`);
    return `notebookLauncher(fn, args, { ${fields.join(", ")} })`;
  }
  const flags = specs.map((s) => `--${s.flag} ${flagValue(s.example)}`).join(" ");
  return surface === "cli" ? `tslaunch run ${flags} script.ts` : `%%launch ${flags}`;
}

export function specFor(key: Key): OptionSpec {
  return OPTION_SPECS.find((s) => s.key === key)!;
}

/** The OptionError for a refused value, in the words of `surface`. */
function optionError(bad: InvalidValue, surface: Surface): OptionError {
  const { spec, value, accepted } = bad;
  const shown = typeof value === "string" ? JSON.stringify(value) : String(JSON.stringify(value) ?? value);
  return new OptionError(`${optionName(spec, surface)} must be ${accepted}, got ${shown}. Example: ${surfaceExample(surface, [spec])}`);
}

function positiveInt(value: unknown, spec: OptionSpec): number {
  const n = typeof value === "number" ? value : /^\s*\d+\s*$/.test(String(value)) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1) fail(spec, value, "a positive integer");
  return n;
}

/** `N`, or torchrun's `MIN:MAX`: the number is MAX (the most nodes a launch may have); minNodesOf() gives MIN. */
function nodeCount(value: unknown, spec: OptionSpec): number {
  const m = typeof value === "string" ? /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(value) : null;
  if (!m) return positiveInt(value, spec);
  const [min, max] = [Number(m[1]), Number(m[2])];
  if (min < 1 || max < min) fail(spec, value, "a positive integer, or MIN:MAX with 1 <= MIN <= MAX");
  return max;
}

/** The fewest nodes a launch starts with: MIN of `MIN:MAX`, else null (all of num_nodes). */
function minNodesOf(value: unknown): number | null {
  const m = typeof value === "string" ? /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(value) : null;
  return m ? Number(m[1]) : null;
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

function positiveSeconds(value: unknown, spec: OptionSpec): number {
  const n = typeof value === "number" ? value : /^\s*\d*\.?\d+(e-?\d+)?\s*$/i.test(String(value)) ? Number(value) : NaN;
  if (!Number.isFinite(n) || n <= 0) fail(spec, value, "a number of seconds greater than 0");
  return n;
}

function text(value: unknown, spec: OptionSpec): string {
  if (typeof value !== "string" && typeof value !== "number") fail(spec, value, "a string");
  return String(value);
}

/** `rdzv_conf`: an object from the API, or `key=value,key=value` from a flag. */
export function parseRdzvConf(value: unknown, spec: OptionSpec): Record<string, string> {
  const conf = readRdzvConf(value, spec);
  // Checked where it is given (every node parses its own flags), not when a node first needs it.
  for (const key of ["join_timeout", "last_call_timeout", "timeout", "lease_ttl"]) {
    const raw = conf[key];
    if (raw !== undefined && !(Number(raw) > 0)) fail(spec, value, `key=value pairs where ${key} is a number of seconds greater than 0`);
  }
  return conf;
}

function readRdzvConf(value: unknown, spec: OptionSpec): Record<string, string> {
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
    example: 4, default: null, coerce: positiveInt,
  },
  {
    key: "mixedPrecision", flag: "mixed_precision", metavar: MIXED_PRECISIONS.join("|"),
    help: "Mixed precision for the workers, exported to them as ACCELERATE_MIXED_PRECISION.",
    example: "bf16", default: "no", coerce: choice(MIXED_PRECISIONS),
  },
  {
    key: "usePort", flag: "use_port", metavar: "PORT",
    help: "The port of the static rendezvous on master_addr (MASTER_PORT).",
    example: "29500", default: "29500",
    coerce: (v, spec) => {
      const n = Number(v);
      if (!/^\s*\d+\s*$/.test(String(v)) || n < 1 || n > 65535) fail(spec, v, "a port number from 1 to 65535");
      return String(n);
    },
  },
  {
    key: "masterAddr", flag: "master_addr", metavar: "ADDR",
    help: "Address of node 0 (MASTER_ADDR).", example: "127.0.0.1", default: "127.0.0.1",
    coerce: (v, spec) => {
      const s = text(v, spec).trim();
      if (!s) fail(spec, v, "a host name or IP address");
      return s;
    },
  },
  {
    key: "nodeRank", flag: "node_rank", metavar: "RANK",
    help: "The rank of this node, from 0 to num_nodes - 1.", example: 0, default: 0, coerce: nonNegativeInt,
  },
  {
    key: "numNodes", flag: "num_nodes", metavar: "N|MIN:MAX",
    help: "How many nodes take part; MIN:MAX (etcd rendezvous) starts with MIN to MAX nodes and admits more at restarts.", example: 1, default: 1, coerce: nodeCount,
  },
  {
    key: "rdzvBackend", flag: "rdzv_backend", metavar: RDZV_BACKENDS.join("|"),
    help: "Rendezvous method.", example: "static", default: "static", coerce: choice(RDZV_BACKENDS),
  },
  {
    key: "rdzvEndpoint", flag: "rdzv_endpoint", metavar: "HOST[:PORT]",
    help: "The c10d rendezvous store's address.", example: "127.0.0.1:29400", default: "", coerce: text,
  },
  {
    key: "rdzvConf", flag: "rdzv_conf", metavar: "K=V,...",
    help: "Extra rendezvous settings (join_timeout, last_call_timeout, timeout).",
    example: { join_timeout: 60, last_call_timeout: 5 }, default: {}, coerce: parseRdzvConf,
  },
  {
    key: "rdzvId", flag: "rdzv_id", metavar: "ID",
    help: "The job's id; keeps concurrent jobs on one rendezvous store apart.", example: "job1", default: "none", coerce: text,
  },
  {
    key: "maxRestarts", flag: "max_restarts", metavar: "N",
    help: "How many times the worker group is restarted after a failure before the launch fails.",
    example: 3, default: 0, coerce: nonNegativeInt,
  },
  {
    key: "monitorInterval", flag: "monitor_interval", metavar: "SECONDS",
    help: "How often the agent checks the workers.", example: 0.1, default: 0.1, coerce: positiveSeconds,
  },
  {
    key: "logLinePrefixTemplate", flag: "log_line_prefix_template", metavar: "TEMPLATE",
    help: "Prefix of every worker line; placeholders ${rank}, ${local_rank}, ${role_name}, ${node_rank}. Default: '[rank${rank}]: '.",
    example: "[${rank}] ", default: null,
    coerce: (v, spec) => (v === null ? null : text(v, spec)),
  },
  {
    key: "collectiveTimeout", flag: "collective_timeout", metavar: "SECONDS",
    help: "How long a collective (allReduce, broadcast, ...) waits for every rank before it fails, naming the ranks that did not arrive.",
    example: 60, default: 300, coerce: positiveSeconds,
  },
  {
    key: "logDir", flag: "log_dir", metavar: "DIR",
    help: "Write every rank's output to DIR/<rdzv_id>/attempt_<n>/<rank>/stdout.log and stderr.log (torchrun's layout); the cell says where.",
    example: "logs", default: "", coerce: text,
  },
  {
    key: "redirects", flag: "redirects", metavar: "0-3|R:S,...",
    help: "Streams that go to the log files only, not the cell: 0 none, 1 stdout, 2 stderr, 3 both; per local rank like 0:1,1:2. Needs --log_dir.",
    example: "3", default: { all: 0, byLocalRank: {} }, coerce: stdSpec,
  },
  {
    key: "tee", flag: "tee", metavar: "0-3|R:S,...",
    help: "Streams that go to the log files and the cell (torchrun's --tee; with --log_dir every stream is in the files anyway). Needs --log_dir.",
    example: "3", default: { all: 0, byLocalRank: {} }, coerce: stdSpec,
  },
  {
    key: "localRanksFilter", flag: "local_ranks_filter", metavar: "R,...",
    help: "Show only these local ranks' output in the cell (the others' is in the log files when --log_dir is set).",
    example: "0", default: null, coerce: rankList,
  },
  {
    key: "outputLimit", flag: "output_limit", metavar: "BYTES",
    help: "How much of the ranks' output a cell shows (default 4MB in a notebook, TSLAUNCH_OUTPUT_LIMIT; 0: no limit); past it, the output goes only to the log files, whose folder the cell names.",
    example: "4MB", default: null, coerce: parseBytes,
  },
];

/** Every accepted spelling of every option, mapped to its spec. */
const SPELLINGS = new Map<string, OptionSpec>();
for (const spec of OPTION_SPECS) {
  for (const name of [spec.flag, kebab(spec.flag), camel(spec.flag)]) SPELLINGS.set(name, spec);
}

export function defaultOptions(): LaunchOptions {
  return Object.fromEntries(OPTION_SPECS.map((s) => [s.key, structuredClone(s.default)])) as unknown as LaunchOptions;
}

/** Checks between options; worded for the surface. */
function checkTogether(o: LaunchOptions, surface: Surface): LaunchOptions {
  for (const key of ["redirects", "tee"] as const) {
    const s = o[key];
    if (!o.logDir && (s.all !== 0 || Object.values(s.byLocalRank).some((v) => v !== 0))) {
      const spec = specFor(key);
      const example = surface === "api" ? `{ ${camel(spec.flag)}: 3, logDir: "logs" }` : surfaceExample(surface, [spec, specFor("logDir")]);
      throw new OptionError(`${optionName(spec, surface)} needs ${optionName(specFor("logDir"), surface)}: it names the files the output goes to. Example: ${example}`);
    }
  }
  if (o.minNodes != null && o.minNodes !== o.numNodes && !usesEtcd(o)) {
    throw new OptionError(
      `num_nodes ${o.minNodes}:${o.numNodes} (elastic membership) needs the etcd rendezvous: add ${surface === "api" ? 'rdzvBackend: "etcd"' : "--rdzv_backend etcd --rdzv_endpoint HOST:PORT"}, or give one number of nodes.`,
    );
  }
  if (o.nodeRank >= o.numNodes) {
    const [nodeRank, numNodes] = [specFor("nodeRank"), specFor("numNodes")];
    const example = surface === "api" ? "{ numNodes: 2, nodeRank: 1 }" : surfaceExample(surface, [{ ...numNodes, example: 2 }, { ...nodeRank, example: 1 }]);
    throw new OptionError(
      `${optionName(nodeRank, surface)} must be less than ${optionName(numNodes, surface)} (ranks are 0..${o.numNodes - 1}), got node_rank ${o.nodeRank} with num_nodes ${o.numNodes}. ` +
        `Example: ${example}`,
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
    out[spec.key] = spec.key === "numProcesses" && value === null ? null : coerceOn(spec, value, "api");
    if (spec.key === "numNodes") out.minNodes = minNodesOf(value);
  }
  return checkTogether(out as unknown as LaunchOptions, "api");
}

function coerceOn<K extends Key>(spec: OptionSpec<K>, value: unknown, surface: Surface): LaunchOptions[K] {
  try {
    return spec.coerce(value, spec);
  } catch (err) {
    throw err instanceof InvalidValue ? optionError(err, surface) : err;
  }
}

export interface ParsedMagic {
  options: LaunchOptions;
  /** Which options the user gave (others are defaults). */
  given: Set<Key>;
  help: boolean;
}

/** Parses the `%%launch ...` line's flags (without the `%%launch` word). */
export function parseLaunchFlags(line: string): ParsedMagic {
  checkQuotes(line);
  let argv: string[];
  try {
    argv = parseArgsStringToArgv(line);
  } catch (err) {
    throw new OptionError(`cannot read the flags "${line.trim()}": ${(err as Error).message}. See %%launch --help.`);
  }
  return parseLaunchArgv(argv, "magic").parsed;
}

/** An unbalanced quote would silently swallow the flags after it: refuse it. */
function checkQuotes(line: string): void {
  let open: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "\\" && open !== "'") i++;
    else if (open === null && (c === '"' || c === "'")) open = c;
    else if (c === open) open = null;
  }
  if (open !== null) {
    throw new OptionError(`the flags "${line.trim()}" have an unbalanced ${open === '"' ? "double" : "single"} quote: close it, e.g. --log_line_prefix_template '[\${rank}] '. See %%launch --help.`);
  }
}

/**
 * `-n -1`: Node's parser takes "-1" for a flag and says the option "needs a value". A negative
 * number after a flag that takes a value is that flag's value (then refused with what is accepted).
 */
function joinNegativeValues(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const next = argv[i + 1];
    const takesValue = /^--?[\w-]+$/.test(flag) && SPELLINGS.has(flag.replace(/^-+/, "")) || flag === "-n";
    if (takesValue && next !== undefined && /^-\d+(\.\d+)?$/.test(next)) {
      out.push(`${flag.startsWith("--") ? flag : "--" + (flag === "-n" ? "num_processes" : flag.slice(1))}=${next}`);
      i++;
    } else out.push(flag);
  }
  return out;
}

export interface CliFlag {
  type: "string" | "boolean";
  short?: string;
}

/** How the surface's command reads in messages. */
function commandOf(surface: Surface): string {
  return surface === "cli" ? "tslaunch run" : "%%launch";
}

/**
 * Parses launch flags from an argv (the magic's line, or `tslaunch run` / `tslaunch agent`).
 * `extra` adds command-only flags; positionals are returned when allowed (the script and its args).
 */
export function parseLaunchArgv(
  argv: string[],
  surface: Exclude<Surface, "api">,
  extra: Record<string, CliFlag> = {},
  allowPositionals = false,
): { parsed: ParsedMagic; extra: Record<string, string | boolean | undefined>; positionals: string[] } {
  const config: Record<string, CliFlag> = { help: { type: "boolean", short: "h" }, ...extra };
  for (const [name, spec] of SPELLINGS) config[name] = { type: "string", ...(name === spec.flag && spec.short ? { short: spec.short } : {}) };
  let values: Record<string, unknown>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: joinNegativeValues(argv), options: config, strict: true, allowPositionals }));
  } catch (err) {
    throw new OptionError(explainParseError(err as Error & { code?: string }, `${commandOf(surface)} ${argv.join(" ")}`.trim(), surface));
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
    options[spec.key] = coerceOn(spec, value, surface);
    if (spec.key === "numNodes") options.minNodes = minNodesOf(value);
    given.add(spec.key);
  }
  return {
    parsed: { options: checkTogether(options as unknown as LaunchOptions, surface), given, help: values.help === true },
    extra: extraValues,
    positionals,
  };
}

function explainParseError(err: Error & { code?: string }, context: string, surface: Surface): string {
  const known = OPTION_SPECS.map((s) => `--${s.flag}${s.short ? ` (-${s.short})` : ""}`).join(", ");
  const help = `See ${commandOf(surface)} --help.`;
  const example = surfaceExample(surface, [specFor("numProcesses")]);
  if (err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const m = /'([^']+)'/.exec(err.message);
    return `unknown flag ${m ? m[1] : ""} in "${context}". Accepted flags: ${known}. ${help}`;
  }
  if (err.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    const m = /'([^']+)'/.exec(err.message);
    return `flag ${m ? m[1] : ""} needs a value. Example: ${example}. ${help}`;
  }
  if (err.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    const m = /'([^']*)'/.exec(err.message);
    return `unexpected argument ${m ? JSON.stringify(m[1]) : ""} in "${context}": every value follows a flag, e.g. ${example}. ${help}`;
  }
  return `${err.message}. ${help}`;
}

/** `--help` for a surface that takes flags. */
export function launchHelp(surface: Exclude<Surface, "api"> = "magic"): string {
  const rows = OPTION_SPECS.map((s) => {
    const names = `${s.short ? `-${s.short}, ` : ""}--${s.flag} ${s.metavar}`;
    const def = s.default === null || (typeof s.default === "object" && Object.keys(s.default as object).length === 0) ? "" : ` (default: ${JSON.stringify(s.default)})`;
    return `  ${names.padEnd(46)} ${s.help}${def}`;
  });
  const usage = surface === "cli"
    ? ["Usage: tslaunch run [flags] script.ts [args...]", "", "Runs the script in N worker processes (torchrun for TypeScript); the exit code is the job's."]
    : ["Usage: %%launch [flags]", "       <cell body: TypeScript run in every worker process>", "", "Runs the cell body in N worker processes; every rank replays the session's earlier cells first."];
  return [
    ...usage,
    "Flags (Accelerate's notebook_launcher names; kebab-case accepted too):",
    ...rows,
    "  -h, --help                                     Show this help.",
    "",
    `Example: ${surfaceExample(surface, [specFor("numProcesses"), specFor("mixedPrecision")])}`,
  ].join("\n");
}

/** For completion and inspection. */
export function allFlagSpellings(): { flag: string; spec: OptionSpec }[] {
  return OPTION_SPECS.flatMap((spec) => [
    { flag: `--${spec.flag}`, spec },
    ...(spec.short ? [{ flag: `-${spec.short}`, spec }] : []),
  ]);
}

/** torchrun's etcd backends (`etcd`, `etcd-v2`): both are the etcd v3 rendezvous here (launcher/rendezvous/etcd.ts). */
export function usesEtcd(o: Pick<LaunchOptions, "rdzvBackend">): boolean {
  return o.rdzvBackend === "etcd" || o.rdzvBackend === "etcd-v2";
}
