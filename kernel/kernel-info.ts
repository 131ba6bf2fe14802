// The kernel_info_reply, from package.json files only: it is answered before TypeScript and tslab
// are loaded (kernel/main.ts), so that a frontend sees the kernel ready at once.
import { PROTOCOL_VERSION, type KernelInfoReply } from "./jupyter/wire";

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
