// Channels: how workers and agents talk inside one node (signed ZeroMQ over ipc in a private folder).
export { SendQueue, type Sendable } from "../contract";
export * from "./log-channel";
export * from "./worker-channel";
export * from "./launch-dir";
