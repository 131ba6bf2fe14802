// Has this process touched an accelerator? Library-agnostic: the driver libraries mapped into it
// (/proc/self/maps), the device files it holds open (/proc/self/fd), and packages known to take a
// device when loaded (require.cache). The lists are data; TSLAUNCH_GUARD_* variables or a JSON file
// named by TSLAUNCH_GUARD_CONFIG extend them. Used by the kernel's device guard and by the workers'
// self-test in the ACCELERATE_DEBUG_MODE probe.
import { fstatSync, readdirSync, readFileSync, readlinkSync } from "fs";
import { processLibc } from "../contract/process-libc";
import { DeviceOpenWatch, globLocations, type DeviceLocations } from "./device-open-watch";

export interface Evidence {
  kind: "library" | "device" | "package";
  /** The library path, device file or package name. */
  detail: string;
  /** CUDA, ROCm, TPU, Neuron, GPU (render node), WebGPU, ... */
  accelerator: string;
}

interface Rule {
  pattern: RegExp;
  accelerator: string;
  /** For device rules: the directories its paths can be in (DeviceOpenWatch watches them). */
  locations?: DeviceLocations;
}

export interface WatchLists {
  libraries: Rule[];
  devices: Rule[];
  packages: Rule[];
}

const DEFAULT_LIBRARIES: [string, string][] = [
  ["/libcuda\\.so", "CUDA"], ["/libcudart\\.so", "CUDA"], ["/libnvidia-[\\w.-]+\\.so", "CUDA"], ["/libcublas(Lt)?\\.so", "CUDA"],
  ["/libcudnn[\\w]*\\.so", "CUDA"], ["/libnvrtc\\.so", "CUDA"], ["/libamdhip64\\.so", "ROCm"], ["/libhsa-runtime64\\.so", "ROCm"],
  ["/librocm[\\w-]*\\.so", "ROCm"], ["/libtpu\\.so", "TPU"], ["/libnrt\\.so", "Neuron"], ["/libneuronxla[\\w]*\\.so", "Neuron"],
];
/** Pattern, accelerator, and the directories the pattern's paths can be in. */
const DEFAULT_DEVICES: [string, string, DeviceLocations][] = [
  ["^/dev/nvidia(\\d+|ctl|-uvm|-uvm-tools|-modeset)$", "CUDA", [{ dir: "/dev", deep: false }]],
  ["^/dev/kfd$", "ROCm", [{ dir: "/dev", deep: false }]],
  ["^/dev/dri/renderD\\d+$", "GPU", [{ dir: "/dev/dri", deep: false }]],
  ["^/dev/accel\\d*(/.*)?$", "TPU/accelerator", [{ dir: "/dev", deep: false }, { dir: "/dev/accel", deep: true }]],
  ["^/dev/neuron\\d+$", "Neuron", [{ dir: "/dev", deep: false }]],
  ["^/dev/vfio/\\d+$", "TPU (vfio)", [{ dir: "/dev/vfio", deep: false }]],
];
const DEFAULT_PACKAGES: [string, string][] = [
  ["@tensorflow/tfjs-node-gpu", "CUDA"], ["webgpu", "WebGPU"], ["gpu.js", "GPU"], ["@webgpu/dawn", "WebGPU"], ["onnxruntime-node-gpu", "CUDA"],
];

/** `*` in a configured device path matches any characters; anything else is literal. */
function globToRegExp(glob: string): RegExp {
  return new RegExp("^" + glob.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*") + "$");
}

function packageRule(name: string, accelerator: string): Rule {
  const escaped = name.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  return { pattern: new RegExp(`[\\\\/]node_modules[\\\\/]${escaped}[\\\\/]`), accelerator };
}

function splitList(value: string | undefined): string[] {
  return (value ?? "").split(",").map((s) => s.trim()).filter(Boolean);
}

/** The default lists plus what the environment (or the config file) adds. */
export function watchLists(env: NodeJS.ProcessEnv = process.env): WatchLists {
  const extra = { libraries: [] as string[], devices: [] as string[], packages: [] as string[] };
  if (env.TSLAUNCH_GUARD_CONFIG) {
    let parsed: Partial<typeof extra>;
    try {
      parsed = JSON.parse(readFileSync(env.TSLAUNCH_GUARD_CONFIG, "utf8"));
    } catch (err) {
      throw new Error(`TSLAUNCH_GUARD_CONFIG=${env.TSLAUNCH_GUARD_CONFIG} is not a readable JSON file ({"libraries": [...], "devices": [...], "packages": [...]}): ${(err as Error).message}`);
    }
    for (const k of ["libraries", "devices", "packages"] as const) extra[k].push(...(parsed[k] ?? []).map(String));
  }
  extra.libraries.push(...splitList(env.TSLAUNCH_GUARD_LIBRARIES));
  extra.devices.push(...splitList(env.TSLAUNCH_GUARD_DEVICES));
  extra.packages.push(...splitList(env.TSLAUNCH_GUARD_PACKAGES));
  return {
    libraries: [
      ...DEFAULT_LIBRARIES.map(([p, a]) => ({ pattern: new RegExp(p), accelerator: a })),
      ...extra.libraries.map((name) => ({ pattern: new RegExp(name.replace(/[.+?^${}()|[\]\\]/g, "\\$&")), accelerator: "configured accelerator" })),
    ],
    devices: [
      ...DEFAULT_DEVICES.map(([p, a, locations]) => ({ pattern: new RegExp(p), accelerator: a, locations })),
      ...extra.devices.map((glob) => ({ pattern: globToRegExp(glob), accelerator: "configured accelerator", locations: globLocations(glob) })),
    ],
    packages: [
      ...DEFAULT_PACKAGES.map(([n, a]) => packageRule(n, a)),
      ...extra.packages.map((n) => packageRule(n, "configured accelerator")),
    ],
  };
}

function firstMatch(rules: Rule[], text: string): Rule | undefined {
  return rules.find((r) => r.pattern.test(text));
}

/** Everything in this process that shows an accelerator was touched (empty when none). */
export function scanProcess(lists: WatchLists = watchLists()): Evidence[] {
  return new ProcessScanner(lists).scan();
}

/**
 * Scans this process again and again (the kernel's guard does after every cell): each library
 * path, device path and module file is matched against the lists once, and remembered.
 *
 * `scan()` reads everything. `rescan()` is the per-cell look and skips what cannot have changed
 * since the last scan: /proc/self/maps (600 lines in a kernel) while the dynamic loader's counts of
 * loaded and unloaded objects stand still; /proc/self/fd while inotify reports no open or close in
 * the directories the device paths live in (DeviceOpenWatch); and, where it does read the
 * descriptors, the readlink of one that fstat shows is still the same file (device and inode). On
 * this kind of machine every system call costs microseconds; the full look was 0.6-0.7 ms of each
 * cell. close() releases the inotify descriptor.
 */
export class ProcessScanner {
  private readonly libraryRule = new Map<string, Rule | null>();
  private readonly deviceRule = new Map<string, Rule | null>();
  private readonly packageRule = new Map<string, Rule | null>();
  /** What each open descriptor was in the last scan. */
  private fdFiles = new Map<string, OpenFile>();
  /** The loader's counts when the libraries were last read (null: unknown, read again). */
  private librariesReadAt: string | null = null;
  private libraryEvidence: Evidence[] = [];
  private deviceEvidence: Evidence[] = [];
  /** How many times /proc/self/fd was read (diagnostics, and the tests of what rescan() skips). */
  descriptorReads = 0;
  /** Made by the first rescan(); null when inotify cannot cover the device lists. */
  private openWatch: DeviceOpenWatch | null | undefined;

  constructor(private readonly lists: WatchLists) {}

  /** Everything, read afresh. */
  scan(): Evidence[] {
    return this.look(false);
  }

  /** The same answer as scan(), trusting what the last scan read where nothing says it changed. */
  rescan(): Evidence[] {
    return this.look(true);
  }

  close(): void {
    this.openWatch?.close();
    this.openWatch = null;
  }

  private look(trustUnchanged: boolean): Evidence[] {
    const found: Evidence[] = [];
    const seen = new Set<string>();
    const add = (e: Evidence) => {
      if (!seen.has(e.detail)) {
        seen.add(e.detail);
        found.push(e);
      }
    };
    for (const e of this.libraries(trustUnchanged)) add(e);
    for (const e of this.devices(trustUnchanged)) add(e);
    for (const file of Object.keys(require.cache)) {
      const rule = remembered(this.packageRule, file, () => firstMatch(this.lists.packages, file));
      if (rule) {
        const m = /node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(file);
        add({ kind: "package", detail: m ? m[1] : file, accelerator: rule.accelerator });
      }
    }
    return found;
  }

  private libraries(trustUnchanged: boolean): Evidence[] {
    // Only the per-cell look pays for koffi (loaded once): a one-off scan reads the file instead.
    // Loading a library (an addon, koffi.load, a runtime's own dlopen) always moves the loader's
    // counts, so while they stand still the libraries read last time are still all there are.
    const generation = trustUnchanged ? (processLibc()?.loaderCounts() ?? null) : null;
    if (generation !== null && generation === this.librariesReadAt) return this.libraryEvidence;
    const found: Evidence[] = [];
    try {
      for (const line of readFileSync("/proc/self/maps", "utf8").split("\n")) {
        const slash = line.indexOf("/");
        if (slash < 0) continue;
        const file = line.slice(slash);
        const rule = remembered(this.libraryRule, file, () => firstMatch(this.lists.libraries, file));
        if (rule && !found.some((e) => e.detail === file)) found.push({ kind: "library", detail: file, accelerator: rule.accelerator });
      }
    } catch {
      // no /proc (not Linux): nothing to read
    }
    this.librariesReadAt = generation;
    this.libraryEvidence = found;
    return found;
  }

  private devices(trustUnchanged: boolean): Evidence[] {
    if (trustUnchanged) {
      // Made before the descriptors are read: what opens after this is reported (its first look is never quiet).
      if (this.openWatch === undefined) {
        const devices = this.lists.devices;
        this.openWatch = DeviceOpenWatch.start(devices.map((r) => r.locations ?? null), (file) => devices.some((r) => r.pattern.test(file)));
      }
      if (this.openWatch?.quietSinceLastLook()) return this.deviceEvidence;
    }
    const found: Evidence[] = [];
    const seen = new Map<string, OpenFile>();
    this.descriptorReads++;
    try {
      for (const fd of readdirSync("/proc/self/fd")) {
        let file: OpenFile | undefined;
        try {
          // The same number may have been closed and opened again since (the kernel itself closes
          // and opens descriptors between cells): trusted only while it is still the same file.
          const known = trustUnchanged ? this.fdFiles.get(fd) : undefined;
          const stat = fstatSync(Number(fd));
          file = known && known.dev === stat.dev && known.ino === stat.ino ? known : { dev: stat.dev, ino: stat.ino, target: readlinkSync(`/proc/self/fd/${fd}`) };
        } catch {
          continue; // closed between readdir and now (readdir's own descriptor, for one)
        }
        seen.set(fd, file);
        const target = file.target;
        const rule = remembered(this.deviceRule, target, () => firstMatch(this.lists.devices, target.replace(/ \(deleted\)$/, "")));
        if (rule) found.push({ kind: "device", detail: target, accelerator: rule.accelerator });
      }
    } catch {
      // no /proc (not Linux): nothing to read
    }
    this.fdFiles = seen;
    this.deviceEvidence = found;
    return found;
  }
}

/** An open descriptor's file, as the last scan saw it. */
interface OpenFile {
  dev: number;
  ino: number;
  target: string;
}

/** The rule for `key`, matched once; bounded so that a process opening endless files cannot grow it without end. */
function remembered(cache: Map<string, Rule | null>, key: string, match: () => Rule | undefined): Rule | null {
  let rule = cache.get(key);
  if (rule === undefined) {
    rule = match() ?? null;
    if (cache.size >= 50_000) cache.clear();
    cache.set(key, rule);
  }
  return rule;
}

export function describeEvidence(e: Evidence): string {
  switch (e.kind) {
    case "library":
      return `loaded ${e.detail} (${e.accelerator})`;
    case "device":
      return `opened ${e.detail} (${e.accelerator})`;
    case "package":
      return `imported ${e.detail}, which takes a device when loaded (${e.accelerator})`;
  }
}
