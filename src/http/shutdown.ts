// Graceful stop of an HTTP server: stop accepting connections, let requests
// in flight finish, and close keep-alive connections instead of leaving them
// to time out. Responses sent while draining carry `Connection: close`, so a
// client's pooled connection is closed right after its last answer.
import type { Server, ServerResponse } from 'node:http';

export type Drainable = { server: Server; drain(): Promise<void> };

export function drainable(server: Server): Drainable {
  const open = new Set<ServerResponse>();
  let draining = false;
  server.prependListener('request', (_req, res: ServerResponse) => {
    if (draining) res.setHeader('Connection', 'close');
    open.add(res);
    res.once('close', () => open.delete(res));
  });
  return {
    server,
    drain() {
      draining = true;
      for (const res of open) if (!res.headersSent) res.setHeader('Connection', 'close');
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
