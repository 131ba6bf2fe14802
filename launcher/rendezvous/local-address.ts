// Which of this machine's addresses the other nodes reach it by: the source address the kernel picks
// for a route toward `host` (a UDP connect sends nothing). Falls back to loopback without a route.
import dgram from "dgram";

export function localAddressToward(host: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
    const done = (address: string) => {
      socket.close();
      resolve(address);
    };
    socket.once("error", () => done("127.0.0.1"));
    socket.connect(9, host, () => done(socket.address().address));
  });
}
