// How a launch shows in a terminal (`tslaunch run`, notebookLauncher from a plain script): rank
// lines as they are, tslaunch's own notices on stderr.
import type { LaunchEvent } from "../contract";

export function noticeLine(text: string): string {
  return `[tslaunch] ${text}\n`;
}

export function restartLine(event: Extract<LaunchEvent, { type: "restarting" }>): string {
  return noticeLine(`${event.reason}; restart ${event.restartCount}/${event.maxRestarts}`);
}

export function printLaunchEvent(event: LaunchEvent): void {
  if (event.type === "output") process[event.name].write(event.text);
  else if (event.type === "notice") process.stderr.write(noticeLine(event.text));
  else if (event.type === "restarting") process.stderr.write(restartLine(event));
}
