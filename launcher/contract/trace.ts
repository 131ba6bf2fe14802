// Opt-in timing marks for profiling a launch end to end (kernel, agent, workers): with
// TSLAUNCH_TRACE=<file>, each mark appends "<epoch ms> <pid> <label>" to the file. The clock is
// performance.timeOrigin + now(), comparable across processes. `npm run bench -- --only breakdown`
// reads these marks; without the variable a mark costs one environment lookup.
import { appendFileSync } from "fs";

export function traceMark(label: string): void {
  const file = process.env.TSLAUNCH_TRACE;
  if (!file) return;
  try {
    appendFileSync(file, `${(performance.timeOrigin + performance.now()).toFixed(3)} ${process.pid} ${label}\n`);
  } catch {
    // a trace that cannot be written must never fail a launch
  }
}
