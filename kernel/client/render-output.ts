// Kernel output, two ways: as nbformat v4 output objects (what goes into an .ipynb) and as plain
// text for a terminal. OutputArea applies the iopub messages that change earlier outputs
// (clear_output, update_display_data) and merges consecutive stream chunks, like a notebook UI.
// nbformat v4 schema: https://github.com/jupyter/nbformat/blob/main/nbformat/v4/nbformat.v4.schema.json
import type { IopubFields, JupyterMessage } from "../jupyter/wire";

export type MimeBundle = Record<string, unknown>;

export interface StreamOutput {
  output_type: "stream";
  name: "stdout" | "stderr";
  text: string | string[];
}
export interface DisplayDataOutput {
  output_type: "display_data";
  data: MimeBundle;
  metadata: Record<string, unknown>;
}
export interface ExecuteResultOutput {
  output_type: "execute_result";
  execution_count: number | null;
  data: MimeBundle;
  metadata: Record<string, unknown>;
}
export interface ErrorOutput {
  output_type: "error";
  ename: string;
  evalue: string;
  traceback: string[];
}
export type NbOutput = StreamOutput | DisplayDataOutput | ExecuteResultOutput | ErrorOutput;

/** nbformat allows multiline strings as a list of lines; both forms mean the joined text. */
export function joinText(text: unknown): string {
  if (Array.isArray(text)) return text.join("");
  return typeof text === "string" ? text : text === undefined || text === null ? "" : JSON.stringify(text);
}

/**
 * The nbformat output an iopub message contributes, or undefined for messages that are not
 * outputs (status, execute_input, clear_output, ...). update_display_data yields the
 * display_data it carries; replacing the earlier output is OutputArea's job.
 */
export function messageToOutput(msg: Pick<JupyterMessage, "header" | "content">): NbOutput | undefined {
  const c = msg.content as IopubFields;
  switch (msg.header.msg_type) {
    case "stream":
      return { output_type: "stream", name: c.name === "stderr" ? "stderr" : "stdout", text: joinText(c.text) };
    case "display_data":
    case "update_display_data":
      return { output_type: "display_data", data: c.data ?? {}, metadata: c.metadata ?? {} };
    case "execute_result":
      return {
        output_type: "execute_result",
        execution_count: c.execution_count ?? null,
        data: c.data ?? {},
        metadata: c.metadata ?? {},
      };
    case "error":
      return { output_type: "error", ename: c.ename ?? "", evalue: c.evalue ?? "", traceback: c.traceback ?? [] };
    default:
      return undefined;
  }
}

/** What a person reads in a terminal for one output; ends with a newline unless empty. */
export function renderOutput(output: NbOutput, options: { stripAnsi?: boolean } = {}): string {
  let text: string;
  switch (output.output_type) {
    case "stream":
      // Streams arrive in arbitrary chunks: no newline is added, the next chunk continues the line.
      text = joinText(output.text);
      return options.stripAnsi ? stripAnsi(text) : text;
    case "execute_result":
    case "display_data":
      text = renderMimeBundle(output.data);
      break;
    case "error":
      text = output.traceback.length > 0 ? output.traceback.join("\n") : `${output.ename}: ${output.evalue}`;
      break;
  }
  if (options.stripAnsi) text = stripAnsi(text);
  return text === "" || text.endsWith("\n") ? text : text + "\n";
}

function renderMimeBundle(data: MimeBundle): string {
  if ("text/plain" in data) return joinText(data["text/plain"]);
  const mimeTypes = Object.keys(data);
  // Rich output has no terminal form; say what was there so the reader knows it exists.
  return mimeTypes.length > 0 ? `[${mimeTypes[0]} output]` : "";
}

// CSI sequences (colours in IPython tracebacks) and OSC sequences (hyperlinks).
const ANSI_PATTERN = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI_PATTERN, "");
}

/** What OutputArea.handle did with a message, so a live printer can follow along. */
export type OutputChange =
  | { kind: "added"; output: NbOutput }
  /** Text appended to the last stream output (already merged into it). */
  | { kind: "appended"; output: StreamOutput; text: string }
  | { kind: "updated"; outputs: NbOutput[] }
  | { kind: "cleared" }
  | { kind: "none" };

/**
 * The outputs of one cell, built from its iopub messages. Display ids may be shared between areas
 * (an update_display_data can target an earlier cell's output): pass the same `displays` map.
 */
export class OutputArea {
  readonly outputs: NbOutput[] = [];
  private clearOnNextOutput = false;

  constructor(readonly displays: Map<string, DisplayDataOutput[]> = new Map()) {}

  handle(msg: Pick<JupyterMessage, "header" | "content">): OutputChange {
    const type = msg.header.msg_type;
    const content = msg.content as IopubFields;
    if (type === "clear_output") {
      // wait=true: keep the old output on screen until the replacement arrives (avoids flicker).
      if (content.wait) {
        this.clearOnNextOutput = true;
        return { kind: "none" };
      }
      this.clear();
      return { kind: "cleared" };
    }
    const output = messageToOutput(msg);
    if (!output) return { kind: "none" };
    const displayId: unknown = content.transient?.display_id;

    if (type === "update_display_data") {
      // Only updates outputs that exist; an unknown id is dropped, as in JupyterLab.
      const targets = typeof displayId === "string" ? (this.displays.get(displayId) ?? []) : [];
      for (const target of targets) {
        target.data = (output as DisplayDataOutput).data;
        target.metadata = (output as DisplayDataOutput).metadata;
      }
      return targets.length > 0 ? { kind: "updated", outputs: [...targets] } : { kind: "none" };
    }

    if (this.clearOnNextOutput) {
      this.clearOnNextOutput = false;
      this.clear();
    }
    const last = this.outputs[this.outputs.length - 1];
    if (output.output_type === "stream" && last?.output_type === "stream" && last.name === output.name) {
      const text = joinText(output.text);
      last.text = joinText(last.text) + text;
      return { kind: "appended", output: last, text };
    }
    this.outputs.push(output);
    if (output.output_type === "display_data" && typeof displayId === "string") {
      const list = this.displays.get(displayId) ?? [];
      list.push(output);
      this.displays.set(displayId, list);
    }
    return { kind: "added", output };
  }

  private clear(): void {
    // Cleared outputs can no longer be updated through their display id.
    for (const [id, list] of this.displays) {
      const kept = list.filter((o) => !this.outputs.includes(o));
      if (kept.length > 0) this.displays.set(id, kept);
      else this.displays.delete(id);
    }
    this.outputs.length = 0;
  }
}
