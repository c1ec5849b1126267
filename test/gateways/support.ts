// The gateway kits' shared test: a real gateway binary from Debian (started by
// each kit's test file on free loopback ports, with its own config, pid and
// log paths), the identity service, and a tiny upstream that echoes the
// identity headers it receives. Every kit is held to the same checks:
//   (a) login is delegated: the gateway holds the client secret, calls
//       POST /token with the password grant and forwards the end user's IP;
//   (b) a token reaches the upstream with identity headers; no token, a
//       forged, expired or wrong-audience token is refused at the gateway;
//   (c) a signing key rotation while >= 50 requests/s flow for >= 20 s
//       gives zero 401s for valid tokens;
//   (d) for forward-auth kits: an admin's revocation is refused within
//       FORWARD_AUTH_CACHE_SECONDS.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import { adminConsoleFor, call } from '../support/admin.ts';
import { freePort, startTestService, type TestService } from '../support/service.ts';
import { activePrivateKey } from '../support/verify.ts';

export const REPO = new URL('../../', import.meta.url).pathname;
export const KITS = join(REPO, 'examples/gateways');

/** FORWARD_AUTH_CACHE_SECONDS in these tests: (d) must see a revocation within it. */
export const CACHE_SECONDS = 2;

/** Replaces ${NAME} for each listed name (what `envsubst '${A} ${B}'` does). */
export function render(template: string, vars: Record<string, string>): string {
  return template.replace(/\$\{([A-Z_]+)\}/g, (whole, name: string) => vars[name] ?? whole);
}

export type Proc = { child: ChildProcess; output: () => string; stop(): Promise<void> };

/** Starts a gateway binary in the foreground and waits until `port` accepts connections. */
export async function startBinary(cmd: string, args: string[], port: number, env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  const child = spawn(cmd, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited ${child.exitCode}: ${out}`);
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`${cmd} did not listen on ${port}: ${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

type Hit = { path: string; headers: IncomingHttpHeaders };

/** The API behind the gateway: answers 200 with the identity headers it received, and counts. */
export async function startUpstream(): Promise<{ hostPort: string; hits: Hit[]; close(): Promise<void> }> {
  const hits: Hit[] = [];
  const server: Server = createServer((req, res) => {
    hits.push({ path: req.url ?? '', headers: req.headers });
    const h = (name: string) => req.headers[name] ?? null;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ subject: h('x-auth-subject'), clientId: h('x-auth-client-id'), scope: h('x-auth-scope'), roles: h('x-auth-roles') }));
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    hostPort: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export type Answer = { status: number; headers: IncomingHttpHeaders; body: Record<string, unknown> };

/** One HTTP request from a chosen loopback source address (the "end user's IP"). */
export function send(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; from?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method: opts.method ?? 'GET', headers: opts.headers, localAddress: opts.from, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let body: Record<string, unknown> = {};
          try {
            body = JSON.parse(text);
          } catch {}
          resolve({ status: res.statusCode!, headers: res.headers, body });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The end user logs in through the gateway: no client credentials, only username and password. */
export async function loginThroughGateway(gateway: string, user: { email: string; password: string }, from = '127.0.0.1'): Promise<Answer> {
  return send(`${gateway}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username: user.email, password: user.password }).toString(),
    from,
  });
}

export type KitEnv = {
  s: TestService;
  upstream: string;
  gatewayClient: { id: string; secret: string };
  /** base64(client_id:client_secret), what the kits call GATEWAY_CLIENT_BASIC. */
  gatewayBasic: string;
  dir: string;
};

export type Kit = {
  name: string;
  /** Starts the gateway; returns its base URL and how to stop it. */
  start(env: KitEnv): Promise<{ url: string; stop(): Promise<void> }>;
  /** Runs beside the rotation load (HAProxy: the key-sync command and reload). */
  duringRotation?(env: KitEnv, until: Promise<void>): Promise<void>;
  /** Does the kit forward X-Auth-Roles (HAProxy 2.6 cannot read a JSON array)? */
  forwardsRoles: boolean;
  /** Forward-auth kits check revocation (d). */
  checksRevocation: boolean;
};

/** The four checks of README "Gateways" for one kit. */
export function gatewaySuite(kit: Kit): void {
  describe(`${kit.name} kit (examples/gateways/${kit.name})`, () => {
    let env: KitEnv;
    let gateway: { url: string; stop(): Promise<void> };
    let upstream: Awaited<ReturnType<typeof startUpstream>>;
    let user: Awaited<ReturnType<TestService['user']>>;

    before(async () => {
      // Pre-publication window 10 + 1 s: long enough for HAProxy's sync-and-reload to run in it.
      const s = await startTestService({
        JWKS_MAX_AGE: '10',
        KEY_SYNC_INTERVAL: '1',
        KEY_ROTATION_INTERVAL: '0',
        ACCESS_TOKEN_TTL: '120',
        FORWARD_AUTH_CACHE_SECONDS: String(CACHE_SECONDS),
      });
      upstream = await startUpstream();
      const gatewayClient = await s.client({ grantTypes: ['password', 'refresh_token'], scopes: ['api:read', 'api:write'], trustedGateway: true });
      env = {
        s,
        upstream: upstream.hostPort,
        gatewayClient,
        gatewayBasic: Buffer.from(`${encodeURIComponent(gatewayClient.id)}:${encodeURIComponent(gatewayClient.secret)}`).toString('base64'),
        dir: mkdtempSync(join(tmpdir(), `gateway-${kit.name}-`)),
      };
      user = await s.user({ roles: ['viewer'] });
      gateway = await kit.start(env);
    });
    after(async () => {
      await gateway?.stop();
      await upstream?.close();
      await env?.s.stop();
      if (env) rmSync(env.dir, { recursive: true, force: true });
    });

    const api = (path: string, token?: string, headers: Record<string, string> = {}) =>
      send(`${gateway.url}${path}`, { headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } });

    test('(a) login is delegated: the gateway authenticates as its client and forwards the end user IP', async () => {
      const seen: { ip: string; clientId: string | null }[] = [];
      const listener = (e: { ip: string; clientId: string | null }) => seen.push(e);
      env.s.events.on('login.succeeded', listener);
      try {
        // The end user connects from 127.0.0.2; the gateway reaches the service from 127.0.0.1.
        const res = await loginThroughGateway(gateway.url, user, '127.0.0.2');
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(res.body.token_type, 'Bearer');
        assert.equal(typeof res.body.refresh_token, 'string');
        assert.equal(seen.length, 1);
        assert.deepEqual(seen[0], { ...seen[0], ip: '127.0.0.2', clientId: env.gatewayClient.id });
        // A wrong password through the gateway is the service's own invalid_grant.
        const wrong = await loginThroughGateway(gateway.url, { email: user.email, password: 'not the password' }, '127.0.0.2');
        assert.equal(wrong.status, 400);
        assert.equal(wrong.body.error, 'invalid_grant');
      } finally {
        env.s.events.off('login.succeeded', listener);
      }
    });

    test('(b) a token reaches the upstream with identity headers; none, forged, expired, wrong audience are refused at the gateway', async () => {
      const token = (await loginThroughGateway(gateway.url, user)).body.access_token as string;
      const ok = await api('/api/orders', token, { 'x-auth-subject': 'someone-else', 'x-auth-roles': 'admin' });
      assert.equal(ok.status, 200);
      assert.equal(ok.body.subject, user.id, 'the subject the service verified, not the one the client sent');
      assert.equal(ok.body.clientId, env.gatewayClient.id);
      assert.equal(ok.body.scope, 'api:read api:write');
      if (kit.forwardsRoles) assert.equal(ok.body.roles, 'viewer');
      else assert.equal(ok.body.roles, null, 'a client-sent X-Auth-Roles never reaches the upstream');

      // A user without roles: a forged X-Auth-Roles must not survive an empty answer.
      const plain = await env.s.user({ roles: [] });
      const plainToken = (await loginThroughGateway(gateway.url, plain)).body.access_token as string;
      const noRoles = await api('/api/orders', plainToken, { 'x-auth-roles': 'admin' });
      assert.equal(noRoles.status, 200);
      assert.ok(noRoles.body.roles === null || noRoles.body.roles === '', `roles reached the upstream: ${noRoles.body.roles}`);

      const signer = await activePrivateKey(env.s);
      const stranger = await generateKeyPair('ES256');
      const now = Math.floor(Date.now() / 1000);
      const claims = { iss: env.s.config.issuer, aud: env.s.config.audience, sub: user.id, client_id: env.gatewayClient.id, scope: 'api:read', iat: now, exp: now + 300 };
      const sign = (extra: Record<string, unknown>, key = signer.key) =>
        new SignJWT({ ...claims, jti: randomUUID(), ...extra }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: signer.kid }).sign(key);
      const refused: [string, string | undefined][] = [
        ['no token', undefined],
        ['forged (another key under our kid)', await sign({}, stranger.privateKey)],
        ['expired', await sign({ iat: now - 600, exp: now - 60 })],
        ['wrong audience', await sign({ aud: 'api://elsewhere' })],
        ['wrong issuer', await sign({ iss: 'http://evil.example' })],
        ['not a JWT', 'abc.def.ghi'],
      ];
      const hitsBefore = upstream.hits.length;
      for (const [name, t] of refused) {
        const res = await api('/api/orders', t);
        assert.equal(res.status, 401, name);
        assert.match(String(res.headers['www-authenticate'] ?? ''), /^Bearer/, `${name}: an RFC 6750 challenge`);
      }
      assert.equal(upstream.hits.length, hitsBefore, 'no refused request reached the upstream');

      // A scope the token lacks: 403 on the route that requires it.
      const readOnly = await env.s.client({ grantTypes: ['password'], scopes: ['api:read'] });
      const readToken = (await send(`${env.s.config.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${readOnly.id}:${readOnly.secret}`).toString('base64')}` },
        body: new URLSearchParams({ grant_type: 'password', username: user.email, password: user.password }).toString(),
      })).body.access_token as string;
      assert.equal((await api('/api/write/orders', token)).status, 200, 'api:write token on the write route');
      const forbidden = await api('/api/write/orders', readToken);
      assert.equal(forbidden.status, 403);
      assert.equal(upstream.hits.length, hitsBefore + 1);
    });

    test('(c) a key rotation while >= 50 requests/s flow for >= 20 s: zero 401s for valid tokens', async (t) => {
      const RATE = 60;
      const SECONDS = 22;
      let current = (await loginThroughGateway(gateway.url, user)).body.access_token as string;
      const firstKid = decodeProtectedHeader(current).kid;
      let stop = false;
      // Fresh tokens every second through the gateway's login (after the promotion they carry the new kid).
      const refresher = (async () => {
        while (!stop) {
          const res = await loginThroughGateway(gateway.url, user);
          if (res.status === 200) current = res.body.access_token as string;
          await new Promise((r) => setTimeout(r, 1000));
        }
      })();
      let release!: () => void;
      const done = new Promise<void>((r) => (release = r));
      const sideJob = kit.duringRotation?.(env, done);

      const results: { status: number; kid: string | undefined }[] = [];
      const started = Date.now();
      const inFlight: Promise<void>[] = [];
      let rotated = false;
      for (let i = 0; i < RATE * SECONDS; i++) {
        const at = started + (i * 1000) / RATE;
        const wait = at - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (!rotated && Date.now() - started > 1000) {
          rotated = true;
          await env.s.keys.rotate({ actor: 'test' });
        }
        const token = current;
        inFlight.push(
          api('/api/orders', token).then(
            (res) => void results.push({ status: res.status, kid: decodeProtectedHeader(token).kid }),
            () => void results.push({ status: 0, kid: decodeProtectedHeader(token).kid }),
          ),
        );
      }
      const elapsed = (Date.now() - started) / 1000;
      await Promise.all(inFlight);
      stop = true;
      release();
      await refresher;
      await sideJob;

      const byStatus: Record<number, number> = {};
      for (const r of results) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
      const newKidOk = results.filter((r) => r.kid !== firstKid && r.status === 200).length;
      const summary = `${results.length} requests in ${elapsed.toFixed(1)} s, by status ${JSON.stringify(byStatus)}, ${newKidOk} with the new key`;
      assert.ok(elapsed >= 20 && results.length / elapsed >= 50, summary);
      assert.equal(byStatus[401] ?? 0, 0, summary);
      assert.equal(byStatus[200], results.length, summary);
      assert.ok(newKidOk >= RATE, `the new key signed tokens during the flow: ${summary}`);
      t.diagnostic(summary);
    });

    if (kit.checksRevocation) {
      test(`(d) after an admin revokes the user's sessions, the gateway refuses within FORWARD_AUTH_CACHE_SECONDS (${CACHE_SECONDS} s)`, async (t) => {
        const victim = await env.s.user({ roles: ['viewer'] });
        const token = (await loginThroughGateway(gateway.url, victim)).body.access_token as string;
        assert.equal((await api('/api/orders', token)).status, 200);
        // The admin, through the admin API.
        const admin = await env.s.user({ roles: ['admin'] });
        const console = await adminConsoleFor(env.s);
        const adminToken = (await console.login(admin.email, admin.password)).access_token;
        const revoked = await call(env.s.adminUrl, 'POST', `/admin/users/${victim.id}/revoke-sessions`, { token: adminToken });
        assert.equal(revoked.status, 200);
        const revokedAt = Date.now();
        let refusedAfter: number | undefined;
        while (Date.now() - revokedAt < CACHE_SECONDS * 1000 + 3000) {
          const res = await api('/api/orders', token);
          if (res.status === 401) {
            refusedAfter = Date.now() - revokedAt;
            assert.match(String(res.headers['www-authenticate']), /revoked/);
            break;
          }
          assert.equal(res.status, 200);
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(refusedAfter !== undefined && refusedAfter <= CACHE_SECONDS * 1000 + 500, `refused after ${refusedAfter} ms`);
        t.diagnostic(`refused ${refusedAfter} ms after the revocation`);
      });
    }
  });
}

export { freePort };
