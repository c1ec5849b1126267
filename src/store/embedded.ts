// The embedded development database: PGlite (Postgres compiled to WebAssembly)
// persisted under DATA_DIR, served on a loopback port so that Prisma's normal
// `pg` adapter talks to it exactly as it talks to a real Postgres. The port is
// written to DATA_DIR/pglite.port so that the CLI, run beside a development
// server, joins the server's database instead of opening the files twice.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export type EmbeddedPostgres = { url: string; stop(): Promise<void> };

const urlFor = (port: number) => `postgresql://postgres@127.0.0.1:${port}/postgres?sslmode=disable`;

function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, timeout: 500 });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });
}

export async function startEmbeddedPostgres(dataDir: string): Promise<EmbeddedPostgres> {
  const portFile = join(dataDir, 'pglite.port');
  const running = Number(await readFile(portFile, 'utf8').catch(() => ''));
  if (running > 0 && (await reachable(running))) {
    return { url: urlFor(running), stop: async () => {} };
  }
  const dir = join(dataDir, 'pglite');
  await mkdir(dir, { recursive: true });
  const db = await PGlite.create(dir);
  // One connection for the server's pool, the rest for a CLI alongside it.
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 4 });
  await server.start();
  const port = Number(server.getServerConn().split(':').pop());
  await writeFile(portFile, String(port));
  return {
    url: urlFor(port),
    async stop() {
      await rm(portFile, { force: true });
      await server.stop();
      await db.close();
    },
  };
}
