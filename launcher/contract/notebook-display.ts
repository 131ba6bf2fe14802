// `display(value)` and Deno's display protocol, for cells in the kernel and bodies in workers alike.
// An object shows itself as it chooses by having a method [Symbol.for("Jupyter.display")]()
// returning a MIME bundle ({ "text/html": "...", "text/plain": "..." }), as libraries written for
// Deno's notebooks do; anything else shows as Node's inspect() of it. The kernel and the workers
// give `display` a different way out (iopub, or the log channel); what is shown is decided here.
import { inspect } from "util";

export const JUPYTER_DISPLAY = Symbol.for("Jupyter.display");

export interface MimeOutput {
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
}

function checkedBundle(bundle: unknown): MimeOutput {
  if (typeof bundle !== "object" || bundle === null || Array.isArray(bundle)) {
    throw new TypeError(`[Symbol.for("Jupyter.display")]() must return a MIME bundle such as { "text/html": "<b>hi</b>" }, got ${inspect(bundle, { depth: 0 })}`);
  }
  const data: Record<string, unknown> = { ...(bundle as Record<string, unknown>) };
  // Frontends need text/plain as the fallback for anything they cannot render.
  if (!("text/plain" in data)) data["text/plain"] = `<${Object.keys(data)[0] ?? "empty"} display>`;
  return { data, metadata: {} };
}

/** The bundle an object offers through the display protocol (maybe a Promise), or null when it offers none. */
export function offeredOutput(value: unknown): MimeOutput | Promise<MimeOutput> | null {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return null;
  const method = (value as Record<symbol, unknown>)[JUPYTER_DISPLAY];
  if (typeof method !== "function") return null;
  const bundle = method.call(value) as unknown;
  return bundle instanceof Promise ? bundle.then(checkedBundle) : checkedBundle(bundle);
}

/** How a value shows when it offers nothing: as the trailing expression of a cell does. */
export function plainOutput(value: unknown): MimeOutput {
  return { data: { "text/plain": typeof value === "string" ? value : inspect(value, { colors: false }) }, metadata: {} };
}

export interface DisplayFunction {
  (value: unknown): void | Promise<void>;
  json(value: unknown): void;
  html(s: string): void;
  markdown(s: string): void;
  latex(s: string): void;
  svg(s: string): void;
  png(bytes: Uint8Array): void;
  jpeg(bytes: Uint8Array): void;
  text(s: string): void;
  /** Shows a MIME bundle as given ({ "text/html": ..., "text/plain": ... }). */
  bundle(bundle: Record<string, unknown>): void;
}

/** The `display` global: `emit` publishes one display_data. */
export function createDisplayFunction(emit: (output: MimeOutput) => void): DisplayFunction {
  const one = (type: string, value: unknown, plain?: string) => emit(checkedBundle({ [type]: value, ...(plain !== undefined ? { "text/plain": plain } : {}) }));
  const display = ((value: unknown) => {
    const offered = offeredOutput(value);
    if (offered instanceof Promise) return offered.then(emit);
    emit(offered ?? plainOutput(value));
  }) as DisplayFunction;
  display.json = (value) => one("application/json", value, JSON.stringify(value, null, 2));
  display.html = (s) => one("text/html", s);
  display.markdown = (s) => one("text/markdown", s, s);
  display.latex = (s) => one("text/latex", s, s);
  display.svg = (s) => one("image/svg+xml", s);
  display.png = (b) => one("image/png", Buffer.from(b).toString("base64"));
  display.jpeg = (b) => one("image/jpeg", Buffer.from(b).toString("base64"));
  display.text = (s) => one("text/plain", s);
  display.bundle = (b) => emit(checkedBundle(b));
  return display;
}
