// Stack traces point at cell lines ("cell [5], line 3"), not at the generated JavaScript.
// Workers run each cell under a known file name (payload.cellFileName); the recorded
// jsLineToCellLine maps tell which cell line each JavaScript line came from.
import { cellFileName, type LaunchPayload, type RecordedCell } from "../contract";

/** Marks the frame of the function wrapper around a cell (its last line), which is dropped. */
const WRAPPER_FRAME = "\u0000tslaunch-wrapper";
const FRAME_FILE = /(tslaunch-(?:launch-)?cell-(\d+)\.js):(\d+)(?::(\d+))?/g;

/** Where a cell's JavaScript lines came from: enough to name a frame's cell line. */
export type CellLines = Pick<RecordedCell, "executionCount" | "jsLineToCellLine">;

/**
 * Frames inside tslaunch's own code (the kernel, the launcher, tslab's executor) or Node's internals
 * say nothing to the user: they are dropped.
 */
const INTERNAL_FRAME = /\(node:|at node:|[\\/]dist[\\/](?:launcher|kernel)[\\/]|[\\/]node_modules[\\/]tslab[\\/]|^\s+at new Promise \(<anonymous>\)$/;

export function createStackMapper(payload: Pick<LaunchPayload, "replay" | "body">): (stack: string) => string {
  const byFile = new Map<string, CellLines>();
  for (const cell of payload.replay) byFile.set(cellFileName(cell.executionCount, false), cell);
  byFile.set(cellFileName(payload.body.executionCount, true), payload.body);
  return (stack) => mapCellStack(stack, (file) => byFile.get(file));
}

/** A stack with every frame in a cell's generated JavaScript named by its cell line, and internal frames dropped. */
export function mapCellStack(stack: string, cellOf: (file: string) => CellLines | undefined): string {
  const lines = stack.split("\n").flatMap((line) => {
    if (/^\s+at /.test(line) && !FRAME_FILE.test(line) && INTERNAL_FRAME.test(line)) {
      FRAME_FILE.lastIndex = 0;
      return [];
    }
    FRAME_FILE.lastIndex = 0;
    return [
      line.replace(FRAME_FILE, (whole, file: string, count: string, jsLine: string) => {
        const cell = cellOf(file);
        if (!cell) return whole;
        if (Number(jsLine) > cell.jsLineToCellLine.length) return WRAPPER_FRAME;
        const cellLine = cell.jsLineToCellLine[Number(jsLine) - 1] ?? 0;
        const label = cell.executionCount > 0 ? `cell [${count}]` : "launched code";
        return cellLine > 0 ? `${label}, line ${cellLine}` : `${label}, generated line ${jsLine}`;
      }),
    ];
  });
  // Earlier cells' functions are called through the session's exports Proxy: "at Proxy.helper".
  return lines.filter((l) => !l.includes(WRAPPER_FRAME)).map((l) => l.replace(/^(\s+at )Proxy\./, "$1")).join("\n");
}
