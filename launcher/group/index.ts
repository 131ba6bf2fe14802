// One node's worker group: forming the world, spawning, environment, line prefixes, stopping.
export * from "./world";
export * from "./worker-group";
export * from "./prefix";
export * from "./stack-map";
export * from "./stop";
export * from "./warm-pool";
