// Rendezvous: how the nodes of a launch find each other (the store node 0 hosts: static, c10d; etcd says where it is).
export * from "./store";
export * from "./etcd";
export * from "./local-address";
