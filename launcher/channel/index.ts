// Channels: how workers and agents talk inside one node (signed ZeroMQ over ipc in a private folder).
export * from "./send-queue";
export * from "./log-channel";
export * from "./worker-channel";
export * from "./launch-dir";
