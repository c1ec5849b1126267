// `npm run bench`: the service against baselines measured in the same run on
// the same machine, loopback only, bounded (BENCH_SECONDS per measurement).
// Writes bench/results.json and bench/chart.svg and prints a table.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { PasswordHasher } from '../src/accounts/passwords.ts';
import { createUser } from '../src/accounts/users.ts';
import { createDb } from '../src/store/postgres.ts';
import { createClient } from '../src/clients/index.ts';
import { renderChart } from './chart.ts';
import { promisify } from 'node:util';
import { chain, freshDatabase, freePort, interleaved, load, onCpu, LOAD_CPU, onServerCore, PIN, REDIS_URL, rssMb, SECONDS, SERVER_CPU, startProcess, type Load, type Proc, type Request } from './lib.ts';

const run = promisify(execFile);

const CLI = new URL('../src/cli.ts', import.meta.url).pathname;
const SAT = Number(process.env.BENCH_CONNECTIONS ?? 16); // saturating connections for cheap requests
// Password logins saturate 2 cores at 2 in flight, the default MAX_CONCURRENT_HASHES
// (beyond it they are shed with 503, which would only flatter latency).
const SAT_HASH = Number(process.env.BENCH_HASH_CONNECTIONS ?? 2);
// BENCH_ONLY=flood runs only the login-flood scenario (with what it needs).
const ONLY = process.env.BENCH_ONLY;
const FLOOD_SECONDS = Number(process.env.BENCH_FLOOD_SECONDS ?? 20);
const FLOOD_FACTOR = 10; // the flood offers this many times the raw hashing capacity
const DEFAULT_ARGON2 = { memoryCost: 19_456, timeCost: 2, parallelism: 1 };
const KEYCLOAK_ARGON2 = { memoryCost: 7168, timeCost: 5, parallelism: 1 };
type Params = typeof DEFAULT_ARGON2;

const results: Record<string, unknown> = {};
const rows: { scenario: string; c: number; service: Load; baseline?: Load; ratio?: number; cpuRatio?: number; target?: number }[] = [];
const log = (msg: string) => process.stderr.write(`${msg}\n`);

const db = await freshDatabase();
const prisma = createDb(db.url, 2);
const kek = randomBytes(32).toString('base64');
const prefix = `bench:${randomBytes(4).toString('hex')}:`;

async function startService(argon: Params): Promise<Proc & { adminUrl: string }> {
  const port = await freePort();
  const adminPort = await freePort();
  const proc = await startProcess(
    CLI,
    ['serve'],
    {
      ...process.env,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      ADMIN_PORT: String(adminPort),
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
  return { ...proc, adminUrl: `http://127.0.0.1:${adminPort}` };
}

/** The event-loop delay percentiles since the previous scrape (prom-client resets them on each). */
async function eventLoopDelay(adminUrl: string): Promise<{ p50_ms: number; p99_ms: number; max_ms: number }> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const read = (name: string) => Number((Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) * 1000).toFixed(1));
  return { p50_ms: read('nodejs_eventloop_lag_p50_seconds'), p99_ms: read('nodejs_eventloop_lag_p99_seconds'), max_ms: read('nodejs_eventloop_lag_max_seconds') };
}

/** Raw argon2.verify throughput at the same parameters and concurrency, on the server core. */
async function argon2Baseline(params: Params, concurrency: number, seconds = SECONDS): Promise<{ rps: number; requests: number; cpuMs: number }> {
  const [command, argv] = onServerCore(new URL('./baselines/argon2.ts', import.meta.url).pathname, []);
  const env = { ...process.env, M: String(params.memoryCost), T: String(params.timeCost), P: String(params.parallelism), CONCURRENCY: String(concurrency), SECONDS: String(seconds) };
  const { stdout } = await run(command, argv, { env });
  return JSON.parse(stdout) as { rps: number; requests: number; cpuMs: number };
}

const argonLoad = (r: { rps: number; requests: number; cpuMs: number }): Load => ({ rps: r.rps, p50: 0, p99: 0, requests: r.requests, errors: 0, non2xx: 0, cpuMs: r.cpuMs });

/** A baseline server (bench/baselines/<name>.ts) on the server core. */
async function startBaseline(name: string, env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  const port = await freePort();
  return startProcess(new URL(`./baselines/${name}.ts`, import.meta.url).pathname, [], { ...process.env, ...env, PORT: String(port), REDIS_URL }, /ready/, `http://127.0.0.1:${port}`);
}

/** The same request against a baseline server and the service, at 1 and SAT connections. */
async function versusBaseline(scenario: string, baseline: string, [url, pid]: [string, number], req: Request, target: number, env: NodeJS.ProcessEnv = {}) {
  const b = await startBaseline(baseline, env);
  try {
    for (const c of [1, SAT]) {
      const { service, baseline: base } = await interleaved(
        (t) => onCpu(pid, () => load(url, req, c, t)),
        (t) => onCpu(b.pid, () => load(b.url, req, c, t)),
      );
      record(scenario, c, service, base, target);
    }
  } finally {
    await b.stop();
  }
}

/** Redis commands and writes and Postgres queries per request, and Redis bytes per login (bench/redis-memory.ts). */
async function roundTrips(): Promise<unknown> {
  const script = new URL('./redis-memory.ts', import.meta.url).pathname;
  const { stdout } = await run(process.execPath, [script], { env: { ...process.env, BENCH_LOGINS: process.env.BENCH_LOGINS ?? '50', LOG_LEVEL: 'warn' }, maxBuffer: 1 << 24 });
  return JSON.parse(stdout);
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const form = { 'content-type': 'application/x-www-form-urlencoded' };

/** A refresh token for `email`; a shed login (503, during a flood) is retried for up to 10 s. */
async function login(base: string, auth: string, email: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${base}/token`, {
      method: 'POST',
      headers: { ...form, authorization: auth },
      body: new URLSearchParams({ grant_type: 'password', username: email, password: 'bench password 123' }),
    });
    const body = (await res.json()) as { refresh_token?: string };
    if (body.refresh_token) return body.refresh_token;
    if (res.status !== 503 || attempt >= 200) throw new Error(`login failed: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ratio: request rates, service over baseline; cpuRatio: CPU time per
// request, baseline over service (the per-core ratio, insensitive to what
// else the machine runs).
function record(scenario: string, c: number, service: Load, baseline?: Load, target?: number) {
  const ratio = baseline ? service.rps / baseline.rps : undefined;
  const cpuRatio = baseline?.cpuMs && service.cpuMs ? baseline.cpuMs / service.cpuMs : undefined;
  rows.push({ scenario, c, service, baseline, ratio, cpuRatio, target });
  log(`  ${scenario} c=${c}: ${service.rps.toFixed(0)} req/s p50 ${service.p50} ms p99 ${service.p99} ms` +
    (service.cpuMs ? `, ${service.cpuMs} ms CPU/request` : '') +
    (baseline ? ` | baseline ${baseline.rps.toFixed(0)} req/s${baseline.cpuMs ? `, ${baseline.cpuMs} ms CPU` : ''}; ratio ${ratio!.toFixed(2)}${cpuRatio ? `, per core ${cpuRatio.toFixed(2)}` : ''}` : '') +
    (service.non2xx || service.errors ? ` | non-2xx ${service.non2xx} errors ${service.errors}` : ''));
}

/**
 * A flood of failed logins (unknown users, each from its own IP through a
 * trusted gateway) at FLOOD_FACTOR × the raw hashing capacity, generated by
 * bench/flood.ts in its own process: shed answers' latency, and refresh and
 * JWKS latency during the flood against the same service idle.
 */
async function floodScenario(svc: Proc & { adminUrl: string }, auth: string, email: string, params: Params) {
  const gateway = await createClient(
    prisma,
    { id: `bench-flood-${randomBytes(3).toString('hex')}`, grantTypes: ['password'], scopes: ['api:read'], trustedGateway: true },
    ['api:read'],
  );
  const capacity = (await argon2Baseline(params, SAT_HASH)).rps;
  // BENCH_FLOOD_RATE fixes the rate (to compare two builds at the same load).
  const rate = Number(process.env.BENCH_FLOOD_RATE ?? 0) || Math.round(capacity * FLOOD_FACTOR);
  const refreshChain = async (seconds: number) => {
    let token = await login(svc.url, auth, email);
    return chain(svc.url, 1, async (_w, prev) => {
      if (prev?.status === 200) token = (JSON.parse(prev.body) as { refresh_token: string }).refresh_token;
      else if (prev) token = await login(svc.url, auth, email);
      return { path: '/token', method: 'POST', headers: { ...form, authorization: auth }, body: `grant_type=refresh_token&refresh_token=${token}` };
    }, seconds);
  };
  const jwksOnce = async (seconds: number) => chain(svc.url, 1, async () => ({ path: '/jwks', method: 'GET' }), seconds);
  const measure = Math.max(2, Math.floor((FLOOD_SECONDS - 4) / 2));

  log(`login flood: ${rate} failed logins/s (${FLOOD_FACTOR}× raw argon2 capacity ${capacity.toFixed(0)}/s) for ${FLOOD_SECONDS} s`);
  const idleRefresh = await refreshChain(measure);
  const idleJwks = await jwksOnce(measure);
  await eventLoopDelay(svc.adminUrl); // resets the delay histogram
  const flood = spawn(process.execPath, [new URL('./flood.ts', import.meta.url).pathname], {
    env: {
      ...process.env,
      FLOOD_URL: svc.url,
      FLOOD_AUTH: basic(gateway.client_id, gateway.client_secret),
      FLOOD_RATE: String(rate),
      FLOOD_SECONDS: String(FLOOD_SECONDS),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  flood.stdout.on('data', (d) => (out += d));
  const ended = once(flood, 'exit');
  await new Promise((r) => setTimeout(r, 2000)); // the flood is up to speed
  const floodRefresh = await refreshChain(measure);
  const floodJwks = await jwksOnce(measure);
  const loopDelay = await eventLoopDelay(svc.adminUrl);
  await ended;
  const generated = JSON.parse(out) as { sent_rps: number; errors: number; by_status: Record<string, { count: number; p50_ms: number; p99_ms: number }> };
  const shed = generated.by_status['503'];
  results.flood = {
    offered_rps: rate,
    sent_rps: generated.sent_rps,
    by_status: generated.by_status,
    errors: generated.errors,
    shed_p50_ms: shed?.p50_ms,
    refresh_p99_idle_ms: idleRefresh.p99,
    refresh_p99_flood_ms: floodRefresh.p99,
    refresh_p50_idle_ms: idleRefresh.p50,
    refresh_p50_flood_ms: floodRefresh.p50,
    jwks_p99_idle_ms: idleJwks.p99,
    jwks_p99_flood_ms: floodJwks.p99,
    event_loop_delay_during_flood_ms: loopDelay,
  };
  log(`  sent ${generated.sent_rps} req/s; answers ${JSON.stringify(generated.by_status)}`);
  log(`  shed (503) p50 ${shed?.p50_ms ?? '-'} ms (target ≤ 5 ms)`);
  log(`  refresh p50/p99 idle ${idleRefresh.p50}/${idleRefresh.p99} ms, flood ${floodRefresh.p50}/${floodRefresh.p99} ms (target p99 ≤ 3× idle)`);
  log(`  JWKS p99 idle ${idleJwks.p99} ms, flood ${floodJwks.p99} ms (target ≤ 10 ms)`);
  log(`  event-loop delay during the flood: p50 ${loopDelay.p50_ms} ms, p99 ${loopDelay.p99_ms} ms, max ${loopDelay.max_ms} ms`);
}

try {
  const client = await createClient(prisma, { id: 'bench-gateway', grantTypes: ['password', 'refresh_token', 'client_credentials'], scopes: ['api:read'] }, ['api:read']);
  const auth = basic(client.client_id, client.client_secret);
  const passwordBody = (email: string) =>
    new URLSearchParams({ grant_type: 'password', username: email, password: 'bench password 123' }).toString();

  for (const [label, params] of [['default', DEFAULT_ARGON2], ['keycloak', KEYCLOAK_ARGON2]] as const) {
    if (ONLY === 'flood' && label !== 'default') continue;
    const email = `bench-${label}@example.com`;
    await createUser(prisma, new PasswordHasher(params), { email, password: 'bench password 123', roles: ['viewer'] });
    log(`password grant, argon2 ${label} (m=${params.memoryCost} KiB, t=${params.timeCost}, p=${params.parallelism})`);
    const svc = await startService(params);
    try {
      if (label === 'default') results.rss_idle_mb = await rssMb(svc.pid);
      const req = { method: 'POST' as const, path: '/token', headers: { ...form, authorization: auth }, body: passwordBody(email) };
      await load(svc.url, req, 2, 1); // warm-up
      if (ONLY === 'flood') {
        await floodScenario(svc, auth, email, params);
        continue;
      }
      for (const c of [1, SAT_HASH]) {
        let peak = 0;
        const sampler = setInterval(async () => (peak = Math.max(peak, await rssMb(svc.pid).catch(() => 0))), 250);
        const { service, baseline: base } = await interleaved((t) => onCpu(svc.pid, () => load(svc.url, req, c, t)), async (t) => argonLoad(await argon2Baseline(params, c, t)));
        clearInterval(sampler);
        if (label === 'default' && c === SAT_HASH) results.rss_under_login_load_mb = peak;
        record(`password (${label} argon2)`, c, service, base, 0.9);
      }
      if (label !== 'default') continue;

      // The other grants and endpoints run on the default-parameter service.
      log('refresh grant');
      // Each worker follows its own chain: the refresh token of one answer is
      // the input of the next request.
      const keep = (tokens: string[]) => (w: number, prev?: { status: number; body: string }) => {
        if (prev?.status === 200) tokens[w] = (JSON.parse(prev.body) as { refresh_token: string }).refresh_token;
      };
      const refreshNext = (tokens: string[]) => async (w: number, prev?: { status: number; body: string }) => {
        keep(tokens)(w, prev);
        if (prev && prev.status !== 200) tokens[w] = await login(svc.url, auth, email); // a broken chain restarts (counted as non-2xx)
        return { path: '/token', method: 'POST', headers: { ...form, authorization: auth }, body: `grant_type=refresh_token&refresh_token=${tokens[w]}` };
      };
      const rb = await startBaseline('refresh');
      try {
        for (const c of [1, SAT]) {
          const tokens: string[] = [];
          for (let i = 0; i < c; i++) tokens.push(await login(svc.url, auth, email)); // sequential: parallel logins would be shed
          const { service, baseline: base } = await interleaved(
            (t) => onCpu(svc.pid, () => chain(svc.url, c, refreshNext(tokens), t, keep(tokens))),
            (t) => onCpu(rb.pid, () => chain(rb.url, c, async () => ({ path: '/token', method: 'POST', headers: form, body: 'grant_type=refresh_token&refresh_token=x' }), t)),
          );
          record('refresh', c, service, base, 0.5);
        }
      } finally {
        await rb.stop();
      }

      log('client credentials');
      const ccReq = { method: 'POST' as const, path: '/token', headers: { ...form, authorization: auth }, body: 'grant_type=client_credentials&scope=api:read' };
      await versusBaseline('client_credentials', 'client-credentials', [svc.url, svc.pid], ccReq, 0.5);

      log('introspection');
      const rt = await login(svc.url, auth, email);
      const inReq = { method: 'POST' as const, path: '/token/introspection', headers: { ...form, authorization: auth }, body: `token=${rt}` };
      await versusBaseline('introspection', 'introspection', [svc.url, svc.pid], inReq, 0.5);
      // A gateway introspecting a JWT access token (signature, exp, the login
      // in Postgres and Redis) against the JWKS fast path of the same service.
      const jwt = ((await (await fetch(`${svc.url}/token`, { method: 'POST', headers: { ...form, authorization: auth }, body: passwordBody(email) })).json()) as {
        access_token: string;
      }).access_token;
      const jwtReq = { method: 'POST' as const, path: '/token/introspection', headers: { ...form, authorization: auth }, body: `token=${jwt}` };
      for (const c of [1, SAT]) record('introspection (JWT)', c, await load(svc.url, jwtReq, c), await load(svc.url, { path: '/jwks' }, c), 0.5);

      log('JWKS');
      const jwksBody = await (await fetch(`${svc.url}/jwks`)).text();
      await versusBaseline('jwks', 'static', [svc.url, svc.pid], { path: '/jwks' }, 0.8, { BODY: jwksBody });

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
        for (const c of [1, SAT]) {
          const inProcess = await load(orders.url, meReq, c);
          record('verifier (express + requireAuth)', c, inProcess);
          // The same token through the forward-auth endpoint gateways call (issue 13: >= 0.8x in-process requireAuth).
          record('forward-auth GET /verify', c, await load(svc.url, { path: '/verify', headers: meReq.headers }, c), inProcess, 0.8);
        }
      } finally {
        await orders.stop();
      }

      log('JWKS while password logins saturate the CPU');
      const [, jwksUnderLoad] = await Promise.all([load(svc.url, req, SAT_HASH), load(svc.url, { path: '/jwks' }, 1)]);
      results.jwks_p99_under_login_load_ms = jwksUnderLoad.p99;
      log(`  JWKS p99 under login saturation: ${jwksUnderLoad.p99} ms (target ≤ 10 ms)`);

      await floodScenario(svc, auth, email, params);
    } finally {
      await svc.stop();
    }
  }

  if (ONLY === 'flood') {
    console.log(JSON.stringify(results.flood, null, 2));
    process.exitCode = 0;
  } else {
  log('round trips per request (bench/redis-memory.ts)');
  results.round_trips = await roundTrips();
  results.machine = {
    pinned: PIN ? { server_cpu: SERVER_CPU, load_generator_cpu: LOAD_CPU } : false,
    cpus: cpus().length,
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
    cpu_ms_per_request: r.service.cpuMs,
    per_core_rps: r.service.cpuMs ? Math.round(1000 / r.service.cpuMs) : undefined,
    baseline_rps: r.baseline ? Math.round(r.baseline.rps) : undefined,
    baseline_cpu_ms_per_request: r.baseline?.cpuMs,
    cpu_ratio: r.cpuRatio === undefined ? undefined : Number(r.cpuRatio.toFixed(2)),
    ratio: r.ratio === undefined ? undefined : Number(r.ratio.toFixed(2)),
    target: r.target,
  }));
  await writeFile(new URL('./results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(new URL('./chart.svg', import.meta.url), renderChart(rows));

  const pad = (s: unknown, n: number) => String(s ?? '').padStart(n);
  console.log(`\n${'scenario'.padEnd(28)}${pad('conn', 5)}${pad('req/s', 9)}${pad('p50 ms', 8)}${pad('p99 ms', 8)}${pad('base/s', 9)}${pad('ratio', 7)}${pad('cpu ms', 8)}${pad('base', 7)}${pad('/core', 7)}${pad('c.ratio', 8)}${pad('target', 8)}`);
  for (const r of rows) {
    console.log(
      `${r.scenario.padEnd(28)}${pad(r.c, 5)}${pad(r.service.rps.toFixed(0), 9)}${pad(r.service.p50, 8)}${pad(r.service.p99, 8)}` +
        `${pad(r.baseline?.rps.toFixed(0), 9)}${pad(r.ratio?.toFixed(2), 7)}${pad(r.service.cpuMs?.toFixed(2), 8)}${pad(r.baseline?.cpuMs?.toFixed(2), 7)}` +
        `${pad(r.service.cpuMs ? Math.round(1000 / r.service.cpuMs) : '', 7)}${pad(r.cpuRatio?.toFixed(2), 8)}${pad(r.target ? `≥${r.target}` : '', 8)}`,
    );
  }
  console.log(`\nRSS idle ${results.rss_idle_mb} MB, under login load ${results.rss_under_login_load_mb} MB; JWKS p99 under login saturation ${results.jwks_p99_under_login_load_ms} ms`);
  const rtr = (results.round_trips as { round_trips_per_request: Record<string, { redis_round_trips: number; redis_commands_incl_script_inner: number; postgres_queries: number }> }).round_trips_per_request;
  for (const [name, r] of Object.entries(rtr)) {
    console.log(`Per ${name}: ${r.redis_round_trips} Redis round trips (${r.redis_commands_incl_script_inner} commands, script-inner included), ${r.postgres_queries} Postgres queries`);
  }
  const f = results.flood as { shed_p50_ms?: number; refresh_p99_idle_ms: number; refresh_p99_flood_ms: number; jwks_p99_flood_ms: number };
  console.log(`Login flood: shed p50 ${f.shed_p50_ms} ms (≤ 5), refresh p99 ${f.refresh_p99_flood_ms} ms vs idle ${f.refresh_p99_idle_ms} ms (≤ 3×), JWKS p99 ${f.jwks_p99_flood_ms} ms (≤ 10)`);
  }
} finally {
  await prisma.$disconnect();
  await db.drop();
}
