// A TCP proxy a test can cut (every connection dropped, new ones refused) and
// restore: the service's view of a store going away, without touching the
// shared store itself. `tap` sees each chunk the service sends before it is
// passed on (a test can stall the store at an exact command); a promise it
// returns holds that chunk, and the connection behind it, until it settles.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Transform } from 'node:stream';
import { freePort, freshDatabase } from './service.ts';

export class TcpProxy {
  readonly port: number;
  readonly target: { host: string; port: number };
  tap: ((chunk: Buffer) => unknown) | undefined;
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  constructor(port: number, target: { host: string; port: number }) {
    this.port = port;
    this.target = target;
  }
  async up(): Promise<void> {
    this.#server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      const tapped = new Transform({
        transform: (chunk: Buffer, _enc, done) => {
          const held = this.tap?.(chunk);
          if (held instanceof Promise) void held.then(() => done(null, chunk), () => done(null, chunk));
          else done(null, chunk);
        },
      });
      client.pipe(tapped).pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => this.#server!.listen(this.port, '127.0.0.1', r));
  }
  async down(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => (this.#server ? this.#server.close(() => r()) : r()));
    this.#server = undefined;
  }
}

/** A fresh database the service reaches only through a proxy the test can cut. */
export async function databaseBehindProxy(): Promise<{ url: string; proxy: TcpProxy; drop(): Promise<void> }> {
  const db = await freshDatabase();
  const target = new URL(db.url);
  const proxy = new TcpProxy(await freePort(), { host: target.hostname, port: Number(target.port || 5432) });
  await proxy.up();
  const viaProxy = new URL(db.url);
  viaProxy.port = String(proxy.port);
  return {
    url: viaProxy.toString(),
    proxy,
    async drop() {
      await proxy.down();
      await db.drop();
    },
  };
}
