// The CLI acts through the same services as the admin API, so its actions are
// audited the same way (actor `cli`): users, clients and signing keys.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { freshDatabase, REDIS_URL } from './support/service.ts';

const CLI = new URL('../src/cli.ts', import.meta.url).pathname;
let db: Awaited<ReturnType<typeof freshDatabase>>;
let env: NodeJS.ProcessEnv;

before(async () => {
  db = await freshDatabase();
  env = {
    PATH: process.env.PATH,
    DATABASE_URL: db.url,
    REDIS_URL,
    REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:`,
    KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    LOG_LEVEL: 'warn',
  };
});
after(() => db.drop());

function cli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, input, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `identity ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

async function auditRows(): Promise<{ type: string; actor: string; subject: string | null; details: unknown }[]> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    return (await c.query('SELECT type, actor, subject, details FROM audit_events ORDER BY id')).rows;
  } finally {
    await c.end();
  }
}

test('users create, clients create and keys rotate / revoke each leave an audit row with actor cli', async () => {
  const user = cli(['users', 'create', '--email', 'ops@example.com', '--password-stdin', '--roles', 'admin'], 'a long enough password 1\n');
  const client = cli(['clients', 'create', '--id', 'cli-gateway', '--grant-types', 'password,refresh_token', '--scopes', 'api:read']);
  const next = cli(['keys', 'rotate']);
  cli(['keys', 'revoke', next.kid as string]);

  const rows = await auditRows();
  const row = (type: string) => rows.find((r) => r.type === type);
  assert.deepEqual(
    rows.map((r) => [r.type, r.actor, r.subject]),
    [
      ['user.created', 'cli', user.id],
      ['client.created', 'cli', 'cli-gateway'],
      ['key.rotated', 'cli', next.kid],
      ['key.revoked', 'cli', next.kid],
    ],
  );
  assert.deepEqual(row('user.created')!.details, { roles: ['admin'], status: 'active' });
  assert.equal(client.client_id, 'cli-gateway');
  // Never a secret in the audit table.
  assert.ok(!JSON.stringify(rows).includes(client.client_secret as string));
  assert.ok(!JSON.stringify(rows).includes('a long enough password 1'));
});
