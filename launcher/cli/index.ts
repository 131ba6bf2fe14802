// The terminal commands: `tslaunch run` and `tslaunch agent`.
export { runCommand, agentCommand } from "./cli";
