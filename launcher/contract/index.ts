// The contract: what every part of a launch agrees on. It imports nothing outside this folder.
export * from "./errors";
export * from "./launch-error";
export * from "./options";
export * from "./payload";
export * from "./protocol";
export * from "./node-protocol";
export * from "./sealed-link";
export * from "./vocabulary";
export * from "./trace";
export * from "./notebook-display";
export * from "./notebook-globals";
export * from "./send-queue";
export * from "./process-libc";
