// `npm run bench:profile`: a CPU profile of the service under one scenario
// (BENCH_PROFILE=refresh|client_credentials|introspection, default refresh)
// at BENCH_CONNECTIONS (default 4) for BENCH_SECONDS, pinned like `npm run
// bench`. Writes the .cpuprofile (open it in Chrome DevTools) to
// BENCH_PROFILE_DIR (default bench/profiles) and prints the functions with
// the most self time, grouped by package.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { createUser } from '../src/accounts/users.ts';
import { PasswordHasher } from '../src/accounts/passwords.ts';
import { createClient } from '../src/clients/index.ts';
import { createDb } from '../src/store/postgres.ts';
import { chain, freshDatabase, freePort, REDIS_URL, startProcess } from './lib.ts';

const scenario = process.env.BENCH_PROFILE ?? 'refresh';
const connections = Number(process.env.BENCH_CONNECTIONS ?? 4);
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const dir = process.env.BENCH_PROFILE_DIR ?? new URL('./profiles', import.meta.url).pathname;
await mkdir(dir, { recursive: true });
const before = new Set(await readdir(dir));

const db = await freshDatabase();
const prisma = createDb(db.url, 2);
try {
  const client = await createClient(prisma, { id: 'bench-profile', grantTypes: ['password', 'refresh_token', 'client_credentials'], scopes: ['api:read'] }, ['api:read']);
  const params = { memoryCost: 19_456, timeCost: 2, parallelism: 1 };
  await createUser(prisma, new PasswordHasher(params), { email: 'profile@example.com', password: 'bench password 123', roles: ['viewer'] });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const svc = await startProcess(new URL('../src/cli.ts', import.meta.url).pathname, ['serve'], {
    ...process.env,
    NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}`,
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    ADMIN_PORT: String(await freePort()),
    ISSUER: url,
    DATABASE_URL: db.url,
    REDIS_URL,
    REDIS_KEY_PREFIX: `bench:${randomBytes(4).toString('hex')}:`,
    KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    LOG_LEVEL: 'info',
  }, /identity service listening/, url);
  const auth = `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`;
  const form = { 'content-type': 'application/x-www-form-urlencoded', authorization: auth };
  const login = async () => {
    const res = await fetch(`${url}/token`, { method: 'POST', headers: form, body: 'grant_type=password&username=profile@example.com&password=bench+password+123' });
    return ((await res.json()) as { refresh_token: string }).refresh_token;
  };
  const tokens: string[] = [];
  for (let i = 0; i < connections; i++) tokens.push(await login());
  const result = await chain(url, connections, async (w, prev) => {
    if (scenario === 'client_credentials') return { path: '/token', method: 'POST', headers: form, body: 'grant_type=client_credentials&scope=api:read' };
    if (scenario === 'introspection') return { path: '/token/introspection', method: 'POST', headers: form, body: `token=${tokens[w]}` };
    if (prev?.status === 200) tokens[w] = (JSON.parse(prev.body) as { refresh_token: string }).refresh_token;
    else if (prev) tokens[w] = await login();
    return { path: '/token', method: 'POST', headers: form, body: `grant_type=refresh_token&refresh_token=${tokens[w]}` };
  }, seconds);
  process.stderr.write(`${scenario} c=${connections}: ${result.rps.toFixed(0)} req/s p50 ${result.p50} ms\n`);
  await svc.stop();
} finally {
  await prisma.$disconnect();
  await db.drop();
}

// Self time by function and by package, from the new profile.
const file = (await readdir(dir)).find((f) => f.endsWith('.cpuprofile') && !before.has(f));
if (!file) throw new Error('no profile written');
type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] };
const profile = JSON.parse(await readFile(`${dir}/${file}`, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const self = new Map<number, number>();
profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const byFn = new Map<string, number>();
const byPkg = new Map<string, number>();
const inclusive = new Map<string, number>();
const parent = new Map<number, Node>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n);
const pkgOf = (src: string, fn: string) =>
  /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(src)?.[1] ?? (src.includes('/src/') ? `src/${src.split('/src/')[1]}` : src.startsWith('node:') ? 'node core' : src || `(${fn || 'native'})`);
for (const node of profile.nodes) {
  const t = self.get(node.id) ?? 0;
  const { functionName, url: src, lineNumber } = node.callFrame;
  const pkg = pkgOf(src, functionName);
  byPkg.set(pkg.startsWith('src/') ? 'service (src/)' : pkg, (byPkg.get(pkg.startsWith('src/') ? 'service (src/)' : pkg) ?? 0) + t);
  // Inclusive: every package (and service file) on the stack, once.
  const seen = new Set<string>();
  for (let n: Node | undefined = node; n; n = parent.get(n.id)) seen.add(pkgOf(n.callFrame.url, n.callFrame.functionName));
  if (t) for (const p of seen) inclusive.set(p, (inclusive.get(p) ?? 0) + t);
  const key = `${functionName || '(anonymous)'} ${src.replace(/^.*node_modules\//, '')}:${lineNumber + 1}`;
  byFn.set(key, (byFn.get(key) ?? 0) + t);
}
const top = (m: Map<string, number>, n: number) =>
  [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `  ${((v / total) * 100).toFixed(1).padStart(5)} %  ${k}`).join('\n');
console.log(`${dir}/${file}\nself time by package:\n${top(byPkg, 15)}\ninclusive time (on the stack) by package or service file:\n${top(inclusive, 30)}\nself time by function:\n${top(byFn, 25)}`);
