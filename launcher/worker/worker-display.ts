// `import * as tslab from "tslab"` inside a worker: the same display API as tslab's, but the calls
// travel to the kernel over the log channel. Loading tslab itself would pull in the TypeScript
// compiler (~1.7 s per worker), which is what the replay design avoids.
import { randomBytes } from "crypto";
import type { DisplayPayload } from "../contract";

export type DisplaySink = (payload: DisplayPayload, update: boolean) => void;

let sink: DisplaySink = () => {};
/** During replay, displays are dropped: the launch cell shows only the body's output. */
export function setDisplaySink(next: DisplaySink): void {
  sink = next;
}

class WorkerDisplay {
  javascript(s: string) { this.raw("text/javascript", s); }
  html(s: string) { this.raw("text/html", s); }
  markdown(s: string) { this.raw("text/markdown", s); }
  latex(s: string) { this.raw("text/latex", s); }
  svg(s: string) { this.raw("image/svg+xml", s); }
  png(b: Uint8Array) { this.raw("image/png", b); }
  jpeg(b: Uint8Array) { this.raw("image/jpeg", b); }
  gif(b: Uint8Array) { this.raw("image/gif", b); }
  pdf(b: Uint8Array) { this.raw("application/pdf", b); }
  text(s: string) { this.raw("text/plain", s); }
  raw(contentType: string, b: string | Uint8Array) {
    const value = typeof b === "string" ? b : Buffer.from(b).toString("base64");
    const data: Record<string, unknown> = { [contentType]: value };
    // Jupyter frontends need text/plain as a fallback for anything they cannot render.
    if (contentType !== "text/plain") data["text/plain"] = `<${contentType} display>`;
    sink({ data, metadata: {} }, false);
  }
}

/** Displays with an id update their first output in place, as tslab's newDisplay() does. */
class UpdatingDisplay extends WorkerDisplay {
  private sent = false;
  constructor(private readonly displayId: string) {
    super();
  }
  override raw(contentType: string, b: string | Uint8Array) {
    const value = typeof b === "string" ? b : Buffer.from(b).toString("base64");
    const data: Record<string, unknown> = { [contentType]: value };
    if (contentType !== "text/plain") data["text/plain"] = `<${contentType} display>`;
    sink({ data, metadata: {}, transient: { display_id: this.displayId } }, this.sent);
    this.sent = true;
  }
}

export const display = new WorkerDisplay();
export function newDisplay() {
  return new UpdatingDisplay(randomBytes(8).toString("hex"));
}
export const versions = { tslab: "tslaunch-worker", typescript: "none (workers run recorded JavaScript)", node: process.version };

/** One display_data from the worker's `display` global (launcher/contract/notebook-display.ts). */
export function emitDisplay(output: { data: Record<string, unknown>; metadata: Record<string, unknown> }): void {
  sink(output, false);
}
