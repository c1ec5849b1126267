// The `identity` command as a fresh clone runs it (bin/identity.js): a Node
// that is too old gets one line naming Node 24; `.env` is read when present
// and the environment wins over it; npm linking the bin changes no tracked file.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';

const BIN = new URL('../bin/identity.js', import.meta.url).pathname;
const repo = new URL('..', import.meta.url).pathname;
const oldNode = ['/usr/bin/node', '/bin/node'].find((p) => {
  if (!existsSync(p)) return false;
  return Number(execFileSync(p, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' })) < 24;
});

test('a Node older than 24 gets one line naming Node 24 and where to get it', { skip: !oldNode && 'no Node < 24 on this machine' }, () => {
  const r = spawnSync(oldNode!, [BIN, 'serve'], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 1);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /needs Node\.js 24 or later \(this is v\d+/);
  assert.match(lines[0]!, /npm install|nodejs\.org/);
});

test('the bin is executable in git, so npm linking it changes no tracked file', () => {
  const entry = execFileSync('git', ['ls-files', '-s', 'bin/identity.js'], { cwd: repo, encoding: 'utf8' });
  assert.match(entry, /^100755 /);
});

test('.env is read when present; a variable set in the environment wins over it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'identity-dotenv-'));
  try {
    // Both invalid in the file: the errors show which of them were used.
    writeFileSync(join(dir, '.env'), 'KEY_ENCRYPTION_KEY=too-short\nPORT=99999\n');
    const env = { PATH: process.env.PATH, KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64') };
    const r = spawnSync(process.execPath, [BIN, 'keys', 'list'], { cwd: dir, env, encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /PORT: /, 'PORT came from .env');
    assert.doesNotMatch(r.stderr, /KEY_ENCRYPTION_KEY/, 'the environment overrode .env');

    const without = spawnSync(process.execPath, [BIN, 'keys', 'list'], { cwd: dir, env: { PATH: process.env.PATH }, encoding: 'utf8', timeout: 20_000 });
    assert.match(without.stderr, /KEY_ENCRYPTION_KEY: must be 32 bytes/, 'KEY_ENCRYPTION_KEY came from .env');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
