// `npm run bench:import [-- COUNT]`: generates COUNT users (default 100,000;
// every tenth without a hash, the others with one bcrypt hash each, as a
// migration from a bcrypt system carries), imports them with
// `identity users import FILE` into a fresh database, and prints users/s.
// Then imports the same file again (every address skipped) and prints that.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshDatabase, REDIS_URL } from '../test/support/service.ts';

const count = Number(process.argv[2] ?? 100_000);
const hash = execFileSync('mkpasswd', ['-m', 'bcrypt', '-R', '10', '--stdin'], { input: 'bench password', encoding: 'utf8' }).trim();
const dir = mkdtempSync(join(tmpdir(), 'bench-import-'));
const file = join(dir, 'users.ndjson');
const lines: string[] = [];
for (let i = 0; i < count; i++) {
  lines.push(JSON.stringify(i % 10 ? { email: `user${i}@bench.example`, roles: ['viewer'], password_hash: hash } : { email: `user${i}@bench.example` }));
}
writeFileSync(file, lines.join('\n') + '\n');

const db = await freshDatabase();
const env = {
  PATH: process.env.PATH,
  DATABASE_URL: db.url,
  REDIS_URL,
  REDIS_KEY_PREFIX: `bench:${randomBytes(6).toString('hex')}:`,
  KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  LOG_LEVEL: 'warn',
};
try {
  for (const run of ['first run', 're-run (all skipped)']) {
    const started = performance.now();
    const r = spawnSync(process.execPath, [new URL('../src/cli.ts', import.meta.url).pathname, 'users', 'import', file], { env, encoding: 'utf8' });
    const seconds = (performance.now() - started) / 1000;
    if (r.status !== 0) throw new Error(r.stderr);
    const report = JSON.parse(r.stdout);
    console.log(`${run}: ${count} users in ${seconds.toFixed(1)} s = ${Math.round(count / seconds)} users/s (created ${report.created}, skipped ${report.skipped}), whole CLI process included`);
  }
} finally {
  await db.drop();
  rmSync(dir, { recursive: true });
}
