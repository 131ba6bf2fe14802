// The agents: the launching node's (Launch: attempts, monitor, restarts) and a joined node's
// (NodeAgent, what `tslaunch agent` runs).
export * from "./agent";
export * from "./node-agent";
