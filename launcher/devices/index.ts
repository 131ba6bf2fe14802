// Devices: which accelerators this machine shows, and whether a process has touched one.
export * from "./accelerators";
export * from "./device-scan";
export * from "./num-processes";
