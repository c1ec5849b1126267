// `npm run bench`: the service against baselines measured in the same run on
// the same machine, loopback only, bounded (BENCH_SECONDS per measurement).
// Writes bench/results.json and bench/chart.svg and prints a table.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, totalmem } from 'node:os';
import argon2 from 'argon2';
import { PasswordHasher } from '../src/accounts/passwords.ts';
import { createUser } from '../src/accounts/users.ts';
import { createDb } from '../src/store/postgres.ts';
import { createClient } from '../src/clients/index.ts';
import { renderChart } from './chart.ts';
import { chain, freshDatabase, freePort, load, REDIS_URL, rssMb, SECONDS, startProcess, type Load, type Proc } from './lib.ts';

const CLI = new URL('../src/cli.ts', import.meta.url).pathname;
const SAT = Number(process.env.BENCH_CONNECTIONS ?? 16); // saturating connections for cheap requests
// Password logins saturate 2 cores at 4 in flight, the default MAX_CONCURRENT_HASHES
// (beyond it they are shed with 503, which would only flatter latency).
const SAT_HASH = Number(process.env.BENCH_HASH_CONNECTIONS ?? 4);
const DEFAULT_ARGON2 = { memoryCost: 19_456, timeCost: 2, parallelism: 1 };
const KEYCLOAK_ARGON2 = { memoryCost: 7168, timeCost: 5, parallelism: 1 };
type Params = typeof DEFAULT_ARGON2;

const results: Record<string, unknown> = {};
const rows: { scenario: string; c: number; service: Load; baseline?: Load | { rps: number }; ratio?: number; target?: number }[] = [];
const log = (msg: string) => process.stderr.write(`${msg}\n`);

const db = await freshDatabase();
const prisma = createDb(db.url, 2);
const kek = randomBytes(32).toString('base64');
const prefix = `bench:${randomBytes(4).toString('hex')}:`;

async function startService(argon: Params): Promise<Proc> {
  const port = await freePort();
  return startProcess(
    CLI,
    ['serve'],
    {
      ...process.env,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      ADMIN_PORT: String(await freePort()),
      ISSUER: `http://127.0.0.1:${port}`,
      DATABASE_URL: db.url,
      REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      KEY_ENCRYPTION_KEY: kek,
      ARGON2_MEMORY_KIB: String(argon.memoryCost),
      ARGON2_TIME_COST: String(argon.timeCost),
      ARGON2_PARALLELISM: String(argon.parallelism),
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    },
    /identity service listening/,
    `http://127.0.0.1:${port}`,
  );
}

/** Raw argon2.verify throughput at the same parameters and concurrency. */
async function argon2Baseline(params: Params, concurrency: number, seconds = SECONDS): Promise<{ rps: number }> {
  const hash = await argon2.hash('bench password 123', { type: argon2.argon2id, ...params });
  const deadline = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        await argon2.verify(hash, 'bench password 123');
        done++;
      }
    }),
  );
  return { rps: done / seconds };
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const form = { 'content-type': 'application/x-www-form-urlencoded' };

async function login(base: string, auth: string, email: string): Promise<string> {
  const res = await fetch(`${base}/token`, {
    method: 'POST',
    headers: { ...form, authorization: auth },
    body: new URLSearchParams({ grant_type: 'password', username: email, password: 'bench password 123' }),
  });
  const body = (await res.json()) as { refresh_token?: string };
  if (!body.refresh_token) throw new Error(`login failed: ${JSON.stringify(body)}`);
  return body.refresh_token;
}

function record(scenario: string, c: number, service: Load, baseline?: Load | { rps: number }, target?: number) {
  const ratio = baseline ? service.rps / baseline.rps : undefined;
  rows.push({ scenario, c, service, baseline, ratio, target });
  log(`  ${scenario} c=${c}: ${service.rps.toFixed(0)} req/s p50 ${service.p50} ms p99 ${service.p99} ms` +
    (baseline ? ` | baseline ${baseline.rps.toFixed(0)} req/s, ratio ${ratio!.toFixed(2)}` : '') +
    (service.non2xx || service.errors ? ` | non-2xx ${service.non2xx} errors ${service.errors}` : ''));
}

try {
  const client = await createClient(prisma, { id: 'bench-gateway', grantTypes: ['password', 'refresh_token', 'client_credentials'], scopes: ['api:read'] }, ['api:read']);
  const auth = basic(client.client_id, client.client_secret);
  const passwordBody = (email: string) =>
    new URLSearchParams({ grant_type: 'password', username: email, password: 'bench password 123' }).toString();

  for (const [label, params] of [['default', DEFAULT_ARGON2], ['keycloak', KEYCLOAK_ARGON2]] as const) {
    const email = `bench-${label}@example.com`;
    await createUser(prisma, new PasswordHasher(params), { email, password: 'bench password 123', roles: ['viewer'] });
    log(`password grant, argon2 ${label} (m=${params.memoryCost} KiB, t=${params.timeCost}, p=${params.parallelism})`);
    const svc = await startService(params);
    try {
      if (label === 'default') results.rss_idle_mb = await rssMb(svc.pid);
      const req = { method: 'POST' as const, path: '/token', headers: { ...form, authorization: auth }, body: passwordBody(email) };
      await load(svc.url, req, 2, 1); // warm-up
      for (const c of [1, SAT_HASH]) {
        const base = await argon2Baseline(params, c);
        let peak = 0;
        const sampler = setInterval(async () => (peak = Math.max(peak, await rssMb(svc.pid).catch(() => 0))), 250);
        const service = await load(svc.url, req, c);
        clearInterval(sampler);
        if (label === 'default' && c === SAT_HASH) results.rss_under_login_load_mb = peak;
        record(`password (${label} argon2)`, c, service, base, 0.9);
      }
      if (label !== 'default') continue;

      // The other grants and endpoints run on the default-parameter service.
      log('refresh grant');
      // Each worker follows its own chain: the refresh token of one answer is
      // the input of the next request.
      const refreshNext = (tokens: string[]) => async (w: number, prev?: { status: number; body: string }) => {
        if (prev?.status === 200) tokens[w] = (JSON.parse(prev.body) as { refresh_token: string }).refresh_token;
        else if (prev) tokens[w] = await login(svc.url, auth, email); // a broken chain restarts (counted as non-2xx)
        return { path: '/token', method: 'POST', headers: { ...form, authorization: auth }, body: `grant_type=refresh_token&refresh_token=${tokens[w]}` };
      };
      const rbPort = await freePort();
      const rb = await startProcess(new URL('./baselines/refresh.ts', import.meta.url).pathname, [], { ...process.env, PORT: String(rbPort), REDIS_URL }, /ready/, `http://127.0.0.1:${rbPort}`);
      try {
        for (const c of [1, SAT]) {
          const base = await chain(rb.url, c, async () => ({ path: '/token', method: 'POST', headers: form, body: 'grant_type=refresh_token&refresh_token=x' }));
          const tokens: string[] = [];
          for (let i = 0; i < c; i++) tokens.push(await login(svc.url, auth, email)); // sequential: parallel logins would be shed
          record('refresh', c, await chain(svc.url, c, refreshNext(tokens)), base, 0.5);
        }
      } finally {
        await rb.stop();
      }

      log('client credentials');
      const ccReq = { method: 'POST' as const, path: '/token', headers: { ...form, authorization: auth }, body: 'grant_type=client_credentials&scope=api:read' };
      for (const c of [1, SAT]) record('client_credentials', c, await load(svc.url, ccReq, c));

      log('introspection');
      const rt = await login(svc.url, auth, email);
      const inReq = { method: 'POST' as const, path: '/token/introspection', headers: { ...form, authorization: auth }, body: `token=${rt}` };
      for (const c of [1, SAT]) record('introspection', c, await load(svc.url, inReq, c));

      log('JWKS');
      const jwksBody = await (await fetch(`${svc.url}/jwks`)).text();
      const sPort = await freePort();
      const st = await startProcess(new URL('./baselines/static.ts', import.meta.url).pathname, [], { ...process.env, PORT: String(sPort), BODY: jwksBody }, /ready/, `http://127.0.0.1:${sPort}`);
      try {
        for (const c of [1, SAT]) {
          const base = await load(st.url, { path: '/jwks' }, c);
          record('jwks', c, await load(svc.url, { path: '/jwks' }, c), base, 0.8);
        }
      } finally {
        await st.stop();
      }

      log('downstream verifier (examples/orders-service.ts, GET /me with a Bearer token)');
      const at = (await (await fetch(`${svc.url}/token`, {
        method: 'POST',
        headers: { ...form, authorization: auth },
        body: passwordBody(email),
      })).json()) as { access_token: string };
      const oPort = await freePort();
      const orders = await startProcess(new URL('../examples/orders-service.ts', import.meta.url).pathname, [], {
        ...process.env, ISSUER: svc.url, PORT: String(oPort),
      }, /orders service on/, `http://127.0.0.1:${oPort}`);
      try {
        const meReq = { path: '/me', headers: { authorization: `Bearer ${at.access_token}` } };
        for (const c of [1, SAT]) record('verifier (express + requireAuth)', c, await load(orders.url, meReq, c));
      } finally {
        await orders.stop();
      }

      log('JWKS while password logins saturate the CPU');
      const [, jwksUnderLoad] = await Promise.all([load(svc.url, req, SAT_HASH), load(svc.url, { path: '/jwks' }, 1)]);
      results.jwks_p99_under_login_load_ms = jwksUnderLoad.p99;
      log(`  JWKS p99 under login saturation: ${jwksUnderLoad.p99} ms (target ≤ 10 ms)`);
    } finally {
      await svc.stop();
    }
  }

  results.machine = {
    cpus: availableParallelism(),
    model: cpus()[0]?.model,
    memory_gb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    seconds_per_measurement: SECONDS,
    saturation_connections: { cheap: SAT, password: SAT_HASH },
  };
  results.scenarios = rows.map((r) => ({
    scenario: r.scenario,
    connections: r.c,
    rps: Math.round(r.service.rps),
    p50_ms: r.service.p50,
    p99_ms: r.service.p99,
    non2xx: r.service.non2xx,
    errors: r.service.errors,
    baseline_rps: r.baseline ? Math.round(r.baseline.rps) : undefined,
    ratio: r.ratio === undefined ? undefined : Number(r.ratio.toFixed(2)),
    target: r.target,
  }));
  await writeFile(new URL('./results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(new URL('./chart.svg', import.meta.url), renderChart(rows));

  const pad = (s: unknown, n: number) => String(s ?? '').padStart(n);
  console.log(`\n${'scenario'.padEnd(28)}${pad('conn', 5)}${pad('req/s', 9)}${pad('p50 ms', 8)}${pad('p99 ms', 8)}${pad('base/s', 9)}${pad('ratio', 7)}${pad('target', 8)}`);
  for (const r of rows) {
    console.log(
      `${r.scenario.padEnd(28)}${pad(r.c, 5)}${pad(r.service.rps.toFixed(0), 9)}${pad(r.service.p50, 8)}${pad(r.service.p99, 8)}` +
        `${pad(r.baseline?.rps.toFixed(0), 9)}${pad(r.ratio?.toFixed(2), 7)}${pad(r.target ? `≥${r.target}` : '', 8)}`,
    );
  }
  console.log(`\nRSS idle ${results.rss_idle_mb} MB, under login load ${results.rss_under_login_load_mb} MB; JWKS p99 under login saturation ${results.jwks_p99_under_login_load_ms} ms`);
} finally {
  await prisma.$disconnect();
  await db.drop();
}
