// Replies that need nothing loaded: kernel_info (from package.json files), and the empty history and
// comm lists. kernel/main.ts answers them before TypeScript and tslab are loaded, so that a frontend
// sees the kernel ready at once; the kernel answers them the same way afterwards.
import { PROTOCOL_VERSION, type KernelInfoReply, type ReplyContents } from "./jupyter/wire";

/** This kernel keeps no history (as tslab) and registers no comm targets. */
export const NO_HISTORY: ReplyContents["history_reply"] = { status: "ok", history: [] };
export const NO_COMMS: ReplyContents["comm_info_reply"] = { status: "ok", comms: {} };

const KERNEL_VERSION: string = require("../../package.json").version;
const TSLAB_VERSION: string = require("tslab/package.json").version;
const TYPESCRIPT_VERSION: string = require("@tslab/typescript-for-tslab/package.json").version;

export function kernelInfo(): KernelInfoReply {
  return {
    status: "ok",
    protocol_version: PROTOCOL_VERSION,
    implementation: "tslaunch",
    implementation_version: KERNEL_VERSION,
    language_info: {
      name: "typescript",
      version: TYPESCRIPT_VERSION,
      mimetype: "text/typescript",
      file_extension: ".ts",
      // JupyterLab reads `mode`; the classic Notebook needs name + typescript (as tslab does).
      codemirror_mode: { mode: "typescript", name: "javascript", typescript: true },
    },
    banner: `tslaunch ${KERNEL_VERSION}: TypeScript (tslab ${TSLAB_VERSION}) with %%launch`,
    help_links: [{ text: "tslaunch", url: "https://www.npmjs.com/package/tslaunch" }],
    debugger: false,
  };
}
