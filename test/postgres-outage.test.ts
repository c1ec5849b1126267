// Postgres down: logins answer 503 fast (fail closed), JWKS is still served,
// refresh answers 503 too (it re-reads the user, so a disabled user can never
// refresh on stale data), and service resumes without a restart. The service
// reaches Postgres through a TCP proxy this test cuts and restores; the shared
// Postgres itself is never touched.
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { freePort, freshDatabase, startTestService, type TestService } from './support/service.ts';
import { passwordLogin, refresh, sleep } from './support/security.ts';

class TcpProxy {
  readonly port: number;
  readonly target: { host: string; port: number };
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
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => this.#server!.listen(this.port, '127.0.0.1', r));
  }
  async down(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => (this.#server ? this.#server.close(() => r()) : r()));
    this.#server = undefined;
  }
}

let db: Awaited<ReturnType<typeof freshDatabase>>;
let proxy: TcpProxy;
let svc: TestService;
before(async () => {
  db = await freshDatabase();
  const target = new URL(db.url);
  proxy = new TcpProxy(await freePort(), { host: target.hostname, port: Number(target.port || 5432) });
  await proxy.up();
  const viaProxy = new URL(db.url);
  viaProxy.port = String(proxy.port);
  svc = await startTestService({}, { databaseUrl: viaProxy.toString() });
});
after(async () => {
  await svc.stop();
  await proxy.down();
  await db.drop();
});

test('Postgres down → 503 for logins and refresh, JWKS served; back up → service resumes', async () => {
  const gw = await svc.client();
  const u = await svc.user();
  const ok = await passwordLogin(svc, gw, u.email, u.password);
  assert.equal(ok.status, 200, ok.text);

  await proxy.down();
  const login = await passwordLogin(svc, gw, u.email, u.password);
  assert.equal(login.status, 503, login.text);
  assert.equal(login.body.error, 'temporarily_unavailable');
  assert.equal(login.body.access_token, undefined);
  assert.ok(login.headers.get('retry-after'));
  assert.ok(login.ms < 3000, `took ${login.ms} ms`);

  const r = await refresh(svc, gw, ok.body.refresh_token as string);
  assert.equal(r.status, 503, r.text);
  assert.ok(r.ms < 3000, `took ${r.ms} ms`);
  assert.equal((await fetch(`${svc.config.issuer}/jwks`)).status, 200);
  assert.ok(!svc.logs.text.includes('"statusCode":500'), 'no 500 while the database is down');

  await proxy.up();
  let again = await passwordLogin(svc, gw, u.email, u.password);
  for (let i = 0; again.status !== 200 && i < 50; i++) {
    await sleep(200);
    again = await passwordLogin(svc, gw, u.email, u.password);
  }
  assert.equal(again.status, 200, again.text);
  // The refresh token refused during the outage was never consumed.
  assert.equal((await refresh(svc, gw, ok.body.refresh_token as string)).status, 200);
});
