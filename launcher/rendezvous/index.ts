// Rendezvous: how the nodes of a launch find each other (the store node 0 hosts: static, c10d).
export * from "./store";
