// The Dockerfile, without a Docker engine: lint it (dockerfile-utils), then
// replay its own instructions in clean temporary folders — COPY through
// .dockerignore, RUN with the local Node 24 and npm, COPY --from between
// stages — and start the runtime stage's CMD (and the migration command) as
// the image's USER, on read-only files, against the test Postgres and Redis.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { validate } from 'dockerfile-utils';
import pg from 'pg';
import { freePort, POSTGRES_URL, REDIS_URL } from './support/service.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

type Instruction = { keyword: string; args: string };
type Stage = { name: string; image: string; steps: Instruction[] };

/** Enough of the Dockerfile grammar for this file: continuations, comments, stages. */
function parse(text: string): Stage[] {
  const stages: Stage[] = [];
  const logical = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const line of logical) {
    const [keyword, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (keyword!.toUpperCase() === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)!;
      stages.push({ image: m[1]!, name: m[2] ?? String(stages.length), steps: [] });
    } else stages.at(-1)!.steps.push({ keyword: keyword!.toUpperCase(), args });
  }
  return stages;
}

// .dockerignore semantics: the last matching rule wins, a rule matching a
// folder covers everything under it, `!` re-includes.
const rules = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'))
  .map((l) => ({ include: l.startsWith('!'), pattern: l.replace(/^!/, '').replace(/\/$/, '') }));

// Go's filepath.Match, as Docker uses it: `*` and `?` stop at `/` and match dotfiles.
const globRegExp = (pattern: string) =>
  new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*/g, '\0').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]').replace(/\0/g, '.*')}$`);

function inContext(rel: string): boolean {
  const chain = rel.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
  let included = true;
  for (const rule of rules) if (chain.some((p) => globRegExp(rule.pattern).test(p))) included = rule.include;
  return included;
}

let work: string;
let stages: Stage[];
const roots = new Map<string, string>();
let dbName: string;

function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}`, npm_config_prefer_offline: 'true' };
  for (const k of Object.keys(env)) if (/^(NODE_ENV|DATABASE_URL|REDIS_URL|KEY_ENCRYPTION_KEY|ISSUER|PORT|ADMIN_PORT|HOST|NODE_TEST_CONTEXT)$/.test(k)) delete env[k];
  return env;
}

function envOf(stage: Stage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of stage.steps.filter((s) => s.keyword === 'ENV')) {
    for (const pair of s.args.split(/\s+/)) {
      const [k, ...v] = pair.split('=');
      out[k!] = v.join('=');
    }
  }
  return out;
}

/** Runs one stage's WORKDIR/COPY/RUN steps in its own folder. */
function replay(stage: Stage): void {
  const root = join(work, stage.name);
  roots.set(stage.name, root);
  let cwd = root;
  mkdirSync(root, { recursive: true });
  for (const { keyword, args } of stage.steps) {
    if (keyword === 'WORKDIR') {
      cwd = join(root, args);
      mkdirSync(cwd, { recursive: true });
    } else if (keyword === 'COPY') {
      const words = args.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
      const paths = words.filter((w) => !w.startsWith('--'));
      const dest = paths.pop()!;
      const target = join(cwd, dest);
      for (const src of paths) {
        const source = from ? join(roots.get(from)!, src) : join(ROOT, src);
        assert.ok(existsSync(source), `COPY source ${src} exists`);
        if (!from) assert.ok(inContext(src), `${src} is in the build context (.dockerignore)`);
        const into = statSync(source).isDirectory() ? target : dest.endsWith('/') || paths.length > 1 ? join(target, basename(src)) : target;
        cpSync(source, into, {
          recursive: true,
          filter: (p) => from !== undefined || inContext(relative(ROOT, p)),
        });
      }
    } else if (keyword === 'RUN') {
      const r = spawnSync('sh', ['-c', args], { cwd, env: { ...baseEnv(), ...envOf(stage) }, encoding: 'utf8', timeout: 300_000 });
      assert.equal(r.status, 0, `RUN ${args}\n${r.stdout}\n${r.stderr}`);
    }
  }
}

before(async () => {
  stages = parse(DOCKERFILE);
  work = mkdtempSync(join(tmpdir(), 'identity-image-'));
  chmodSync(work, 0o755);
  dbName = `idtest_img_${randomBytes(5).toString('hex')}`;
  const c = new pg.Client({ connectionString: POSTGRES_URL });
  await c.connect();
  await c.query(`CREATE DATABASE ${dbName}`);
  await c.end();
});

after(async () => {
  if (work) {
    execFileSync('chmod', ['-R', 'u+w', work]); // made read-only above
    rmSync(work, { recursive: true, force: true });
  }
  const c = new pg.Client({ connectionString: POSTGRES_URL });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await c.end();
});

test('the Dockerfile lints clean and follows the image rules', () => {
  assert.deepEqual(validate(DOCKERFILE).map((d) => `${d.range.start.line + 1}: ${d.message}`), []);
  const runtime = stages.at(-1)!;
  assert.ok(stages.length >= 2, 'multi-stage');
  for (const s of stages) assert.match(s.image, /^node:24[.-]/, 'Node 24 LTS base image');
  const user = runtime.steps.findLast((s) => s.keyword === 'USER')?.args ?? '';
  assert.match(user, /^[1-9]\d*(:\d+)?$/, 'numeric non-root USER');
  const cmd = runtime.steps.findLast((s) => s.keyword === 'CMD')!.args;
  assert.deepEqual(JSON.parse(cmd), ['node', '--import', './src/observability/tracing.ts', 'src/cli.ts', 'serve'], 'exec form, node as PID 1, tracing preloaded');
  assert.equal(envOf(runtime).HOST, '0.0.0.0');
  assert.equal(envOf(runtime).NODE_ENV, 'production');
  assert.ok(!inContext('.env') && !inContext('data/x') && !inContext('node_modules/x') && !inContext('src/generated/x'));
  assert.ok(inContext('src/cli.ts') && inContext('prisma/migrations/x/migration.sql'));
});

test('replayed build: production dependencies only; migrate and serve run as the image user on read-only files', { timeout: 420_000 }, async () => {
  for (const stage of stages) replay(stage);
  const runtime = stages.at(-1)!;
  const app = join(roots.get(runtime.name)!, runtime.steps.findLast((s) => s.keyword === 'WORKDIR')!.args);

  const modules = readdirSync(join(app, 'node_modules'));
  for (const dev of ['typescript', 'prisma', 'effect', 'fast-check', 'kubernetes-models', 'dockerfile-utils']) {
    assert.ok(!modules.includes(dev), `dev dependency ${dev} was pruned`);
  }
  for (const dep of ['oidc-provider', 'argon2', '@prisma']) assert.ok(modules.includes(dep), `${dep} is there`);
  assert.ok(!modules.some((m) => /^node-(linux|darwin)-/.test(m)), 'the project-local Node (optional) is pruned: the image has its own');
  assert.ok(existsSync(join(app, 'src/generated/prisma/client.ts')), 'Prisma client generated');
  assert.ok(!existsSync(join(app, 'test')), 'tests are not in the image');

  execFileSync('chmod', ['-R', 'a-w', roots.get(runtime.name)!]);
  const [uid, gid] = runtime.steps.findLast((s) => s.keyword === 'USER')!.args.split(':').map(Number);
  const asUser = process.getuid?.() === 0 ? { uid: uid!, gid: gid ?? uid! } : {};
  // The image's own Node 24 is stood in for by the test's node, copied where
  // uid 1000 can run it (the clone, with its node_modules/.bin/node, may sit
  // in a home directory that user cannot enter).
  const node = join(work, 'node');
  copyFileSync(process.execPath, node);
  chmodSync(node, 0o755);

  const port = await freePort();
  const adminPort = await freePort();
  const dbUrl = new URL(POSTGRES_URL);
  dbUrl.pathname = `/${dbName}`;
  const env = {
    ...baseEnv(),
    ...envOf(runtime),
    HOST: '127.0.0.1', // tests bind loopback only; the image default is 0.0.0.0
    PORT: String(port),
    ADMIN_PORT: String(adminPort),
    ISSUER: `http://127.0.0.1:${port}`,
    DATABASE_URL: dbUrl.toString(),
    REDIS_URL,
    REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:`,
    KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  };

  const migrate = spawnSync(node, ['src/cli.ts', 'migrate'], { cwd: app, env, encoding: 'utf8', timeout: 60_000, ...asUser });
  assert.equal(migrate.status, 0, migrate.stderr);
  assert.equal(JSON.parse(migrate.stdout).applied.length, readdirSync(join(app, 'prisma/migrations'), { withFileTypes: true }).filter((d) => d.isDirectory()).length);

  const [cmd, ...args] = JSON.parse(runtime.steps.findLast((s) => s.keyword === 'CMD')!.args) as string[];
  assert.equal(cmd, 'node');
  const server = spawn(node, args, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'], ...asUser });
  let output = '';
  server.stdout.on('data', (d) => (output += d));
  server.stderr.on('data', (d) => (output += d));
  try {
    const deadline = Date.now() + 60_000;
    let ready = 0;
    while (ready !== 200 && Date.now() < deadline && server.exitCode === null) {
      await new Promise((r) => setTimeout(r, 250));
      ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status, () => 0);
    }
    assert.equal(ready, 200, output);
    const discovery = (await (await fetch(`http://127.0.0.1:${port}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    assert.equal(discovery.issuer, env.ISSUER);
    assert.equal(discovery.token_endpoint, `${env.ISSUER}/token`);
    const jwks = (await (await fetch(discovery.jwks_uri as string)).json()) as { keys: { alg: string }[] };
    assert.equal(jwks.keys[0]?.alg, 'ES256');
  } finally {
    const exited = once(server, 'exit');
    server.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0, output);
  }
});
