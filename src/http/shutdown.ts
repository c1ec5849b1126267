// Graceful stop of an HTTP server: once draining, every response carries
// `Connection: close` (a client's pooled connection closes right after its
// answer instead of timing out); closing stops accepting connections, lets
// requests in flight finish and closes connections as they turn idle.
import type { Server, ServerResponse } from 'node:http';

export type Drainable = { startDraining(): void; close(): Promise<void> };

export function drainable(server: Server): Drainable {
  const open = new Set<ServerResponse>();
  let draining = false;
  server.prependListener('request', (_req, res: ServerResponse) => {
    if (draining) res.setHeader('Connection', 'close');
    open.add(res);
    res.once('close', () => open.delete(res));
  });
  const startDraining = () => {
    draining = true;
    for (const res of open) if (!res.headersSent) res.setHeader('Connection', 'close');
  };
  return {
    startDraining,
    close() {
      startDraining();
      return new Promise((resolve) => {
        // A connection can turn idle between a response and the close of its
        // socket; sweep until the server reports every connection gone.
        const sweep = setInterval(() => server.closeIdleConnections(), 100);
        server.close(() => {
          clearInterval(sweep);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}
