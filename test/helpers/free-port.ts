import * as net from 'node:net';

/**
 * Asks the OS for a free TCP port on 127.0.0.1 (listen on port 0, read it back, close).
 * There is an unavoidable race between closing and the caller binding it; callers that start
 * servers should be prepared to retry on EADDRINUSE.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ port: 0, host, exclusive: true }, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error(`freePort: unexpected address ${String(addr)}`));
        return;
      }
      const { port } = addr;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}
