// scripts/local-node.js (npm postinstall): a project-local Node 24 only where
// the Node running `npm install` is older, and only the pinned binary.
// Each case runs the script in a scratch project against a registry served
// here, which counts what npm asks it for; npm's cache is a fresh directory,
// so nothing can come from an earlier install.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

const script = join(import.meta.dirname, '..', 'scripts', 'local-node.js');
const pkg = `node-${process.platform}-${process.arch}`;

/** A Node older than 24 on this machine (the default `node` of the CI machine is 20), if any. */
const oldNode = ['/usr/bin/node', '/usr/local/bin/node', '/bin/node'].find((path) => {
  if (!existsSync(path)) return false;
  const major = Number(execFileSync(path, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).trim());
  return major < 24;
});

type Registry = { url: string; asked: string[]; server: Server };
const servers: Server[] = [];
after(() => servers.forEach((s) => s.close()));

/** A registry that answers 404 to everything, or serves one forged package. */
async function registry(forged?: { tarball: Buffer }): Promise<Registry> {
  const asked: string[] = [];
  const server = createServer((req, res) => {
    asked.push(req.url!);
    if (forged && req.url === `/${pkg}`) {
      const integrity = `sha512-${createHash('sha512').update(forged.tarball).digest('base64')}`;
      const version = { name: pkg, version: '24.21.0', bin: { node: 'bin/node' }, dist: { tarball: `${url}/${pkg}.tgz`, integrity } };
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ name: pkg, 'dist-tags': { latest: '24.21.0' }, versions: { '24.21.0': version, '24.22.0': { ...version, version: '24.22.0' }, '24.18.1': { ...version, version: '24.18.1' } } }));
    }
    if (forged && req.url === `/${pkg}.tgz`) return res.end(forged.tarball);
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url, asked, server };
}

/** Runs the script with its own process (not spawnSync: the registry answers from this one's event loop). */
async function run(node: string, reg: Registry) {
  const project = mkdtempSync(join(tmpdir(), 'local-node-'));
  mkdirSync(join(project, 'scripts'));
  mkdirSync(join(project, 'node_modules', '.bin'), { recursive: true });
  copyFileSync(script, join(project, 'scripts', 'local-node.js'));
  const child = spawn(node, ['scripts/local-node.js'], {
    cwd: project,
    timeout: 60_000,
    env: {
      PATH: process.env.PATH,
      HOME: project,
      npm_config_registry: `${reg.url}/`,
      npm_config_cache: join(project, 'npm-cache'),
      npm_config_fetch_retries: '0',
      // npm on the old Node: the one that runs this test under `npm test`, else the one on PATH.
      ...(process.env.npm_execpath ? { npm_execpath: process.env.npm_execpath } : {}),
    },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [status] = (await once(child, 'close')) as [number | null];
  return { status, stderr, project, link: join(project, 'node_modules', '.bin', 'node') };
}

test('on Node >= 24 it downloads nothing and links nothing', async () => {
  const reg = await registry();
  const r = await run(process.execPath, reg); // the tests run on Node 24
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(reg.asked, [], 'the registry was never asked');
  assert.equal(existsSync(r.link), false);
  assert.equal(existsSync(join(r.project, 'node_modules', '.local-node')), false);
  assert.equal(r.stderr, '');
});

test('on an older Node it asks the registry for this platform’s Node 24, and a failed download leaves one line, no link and exit 0', { skip: !oldNode && 'no Node older than 24 on this machine' }, async () => {
  const reg = await registry();
  const r = await run(oldNode!, reg);
  assert.equal(r.status, 0, 'npm install must not fail because of it');
  assert.ok(reg.asked.includes(`/${pkg}`), `asked: ${reg.asked.join(', ')}`);
  assert.match(r.stderr, new RegExp(`^local Node: could not install ${pkg}@24\\.\\d+\\.\\d+ .*ask for Node 24\\n$`));
  assert.equal(existsSync(r.link), false);
  assert.equal(existsSync(join(r.project, 'node_modules', '.local-node')), false);
});

test('a registry serving another tarball for the pinned version is refused (pinned integrity)', { skip: !oldNode && 'no Node older than 24 on this machine' }, async () => {
  // A forged package whose registry metadata is self-consistent: only the
  // hash pinned in scripts/local-node.js can tell it apart.
  const dir = mkdtempSync(join(tmpdir(), 'forged-'));
  mkdirSync(join(dir, 'package', 'bin'), { recursive: true });
  writeFileSync(join(dir, 'package', 'package.json'), JSON.stringify({ name: pkg, version: '24.21.0', bin: { node: 'bin/node' } }));
  writeFileSync(join(dir, 'package', 'bin', 'node'), '#!/bin/sh\necho forged\n', { mode: 0o755 });
  execFileSync('tar', ['czf', 'forged.tgz', 'package'], { cwd: dir });
  const reg = await registry({ tarball: readFileSync(join(dir, 'forged.tgz')) });
  const r = await run(oldNode!, reg);
  assert.equal(r.status, 0);
  assert.ok(reg.asked.includes(`/${pkg}`), `asked: ${reg.asked.join(', ')}`);
  // npm compares the registry's answer with the hash pinned in the lockfile the script writes.
  assert.match(r.stderr, /^local Node: could not install .*\(EINTEGRITY: .*wanted sha512-\S+ but got sha512-/);
  assert.equal(existsSync(r.link), false, 'no link to a forged binary');
});
