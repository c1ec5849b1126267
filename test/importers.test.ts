// `identity users import --from keycloak|auth0|firebase`: export files written
// here in each vendor's documented layout, with hashes made by other
// implementations (Python's hashlib and argon2-cffi, mkpasswd, Firebase's
// published test vector), import through the CLI, map emails, verification,
// disabled state and roles, report bad records without writing them, log in
// (and are argon2id afterwards); a second run changes nothing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gatewayFor } from './support/admin.ts';
import { FIREBASE_VECTOR, keycloakArgon2Credential, keycloakPbkdf2Credential, mkpasswdBcrypt } from './support/hash-fixtures.ts';
import { startTestService, type TestService } from './support/service.ts';

const CLI = new URL('../src/cli.ts', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'identity-import-'));

let svc: TestService;
let gw: Awaited<ReturnType<typeof gatewayFor>>;

/** Runs `identity users import ARGS` against the test service's database; the report, stderr and exit code. */
function importCli(args: string[]) {
  const env = {
    PATH: process.env.PATH,
    DATABASE_URL: svc.config.databaseUrl,
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    REDIS_KEY_PREFIX: svc.config.redisKeyPrefix,
    KEY_ENCRYPTION_KEY: svc.config.keyEncryptionKey!.toString('base64'),
    ROLES: svc.config.roles.join(','),
    LOG_LEVEL: 'warn',
  };
  const r = spawnSync(process.execPath, [CLI, 'users', 'import', ...args], { env, encoding: 'utf8', timeout: 120_000 });
  assert.ok(r.status === 0 || r.status === 1, `exit ${r.status}: ${r.stderr}`);
  return { report: JSON.parse(r.stdout), stderr: r.stderr, status: r.status };
}

const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const row = (email: string) => svc.stores.db.user.findUniqueOrThrow({ where: { email } });

before(async () => {
  svc = await startTestService({ ROLES: 'admin,viewer,editor' });
  gw = await gatewayFor(svc);
});
after(() => svc.stop());

/** Logs in with the wrong password (invalid_grant, hash unchanged), then the right one (hash becomes argon2id). */
async function logsInAndUpgrades(email: string, password: string) {
  const before = (await row(email)).passwordHash;
  await assert.rejects(gw.login(email, `${password}?`), (e: any) => e.error === 'invalid_grant', email);
  assert.equal((await row(email)).passwordHash, before);
  assert.ok((await gw.login(email, password)).access_token, email);
  assert.match((await row(email)).passwordHash!, /^\$argon2id\$/, email);
}

describe('Keycloak realm export', () => {
  const password = 'keycloak Pässword 1';
  test('users, credentials (pbkdf2-sha256, pbkdf2-sha512, argon2), roles, groups, disabled; errors per record; idempotent', async () => {
    const realm = {
      realm: 'acme',
      users: [
        {
          username: 'ann', email: 'Ann@Example.com', emailVerified: true, enabled: true,
          realmRoles: ['default-roles-acme', 'offline_access', 'app-admin'], groups: ['/staff/editors'],
          credentials: [keycloakPbkdf2Credential(password, 'pbkdf2-sha256', 27_500)],
        },
        { username: 'bob', email: 'bob@example.com', enabled: true, credentials: [keycloakPbkdf2Credential(password, 'pbkdf2-sha512', 210_000)] },
        {
          username: 'cat', email: 'cat@example.com', emailVerified: true, enabled: true, realmRoles: ['viewer'],
          credentials: [keycloakArgon2Credential(password, { memoryKib: 7168, t: 5, p: 1 })],
        },
        { username: 'dan', email: 'dan@example.com', enabled: false, credentials: [keycloakPbkdf2Credential(password, 'pbkdf2-sha256', 27_500)] },
        { username: 'noemail', enabled: true },
        { username: 'md5', email: 'md5@example.com', credentials: [{ type: 'password', secretData: '{"value":"abc"}', credentialData: '{"algorithm":"md5"}' }] },
        { username: 'dear', email: 'dear@example.com', credentials: [keycloakPbkdf2Credential(password, 'pbkdf2-sha256', 27_500)].map((c) => ({ ...c, credentialData: c.credentialData.replace('27500', '9000000') })) },
        { username: 'nopw', email: 'nopw@example.com', enabled: true },
      ],
    };
    const path = file('realm-export.json', JSON.stringify(realm));
    const first = importCli(['--from', 'keycloak', path, '--role-map', 'app-admin=admin']);
    assert.equal(first.status, 1, 'records failed');
    assert.equal(first.report.created, 5);
    assert.deepEqual(
      first.report.errors.map((e: any) => [e.record, e.field]),
      [[5, 'email'], [6, 'credentials'], [7, 'credentials']],
    );
    assert.match(first.report.errors[2].message, /9000000 iterations/);
    for (const email of ['md5@example.com', 'dear@example.com']) assert.equal(await svc.stores.db.user.findUnique({ where: { email } }), null, 'nothing of a failed record');

    const ann = await row('ann@example.com');
    assert.deepEqual([ann.roles.sort(), ann.emailVerified, ann.status, ann.importSource], [['admin', 'editors'].filter((r) => svc.config.roles.includes(r)), true, 'active', 'keycloak']);
    assert.deepEqual([(await row('dan@example.com')).status, (await row('bob@example.com')).emailVerified], ['disabled', false]);
    assert.deepEqual((await row('cat@example.com')).roles, ['viewer']);
    assert.match((await row('cat@example.com')).passwordHash!, /^\$argon2id\$v=19\$m=7168,t=5,p=1\$/);

    for (const email of ['ann@example.com', 'bob@example.com', 'cat@example.com']) await logsInAndUpgrades(email, password);
    await assert.rejects(gw.login('dan@example.com', password), (e: any) => e.error === 'invalid_grant', 'disabled');

    const again = importCli(['--from', 'keycloak', path, '--role-map', 'app-admin=admin']);
    assert.deepEqual([again.report.created, again.report.skipped, again.report.failed], [0, 5, 3]);
    assert.match((await row('ann@example.com')).passwordHash!, /^\$argon2id\$v=19\$m=19456/, 'the upgraded hash is not overwritten');
    assert.equal(await svc.stores.db.user.count({ where: { importSource: 'keycloak' } }), 5);
    const audited = await svc.stores.db.auditEvent.findMany({ where: { type: 'user.imported', subject: ann.id } });
    assert.deepEqual(audited.map((a) => [a.actor, a.details]), [['cli', { source: 'keycloak', record: 1, legacy_hash: true }]], 'one audit row per created user');
  });
});

describe('Auth0 export', () => {
  const password = 'auth0 password 2';
  test('NDJSON export with support-provided bcrypt hashes, app_metadata.roles and blocked users', async () => {
    const lines = [
      { user_id: 'auth0|1', email: 'eve@example.com', email_verified: true, app_metadata: { roles: ['editor'] }, passwordHash: mkpasswdBcrypt(password, 10) },
      { user_id: 'auth0|2', email: 'fay@example.com', email_verified: false, blocked: true, passwordHash: mkpasswdBcrypt(password, 10) },
      { user_id: 'google-oauth2|3', email: 'gus@example.com', email_verified: true },
      { user_id: 'auth0|4', email: 'not an address', passwordHash: mkpasswdBcrypt(password, 4) },
      { user_id: 'auth0|5', email: 'EVE@example.com' },
    ];
    const path = file('users.ndjson', lines.map((l) => JSON.stringify(l)).join('\n') + '\n{broken\n');
    const first = importCli(['--from', 'auth0', path]);
    assert.deepEqual([first.report.created, first.report.failed], [3, 3]);
    assert.deepEqual(first.report.errors.map((e: any) => [e.line, e.error, e.field]), [[4, 'validation_failed', 'email'], [5, 'conflict', 'email'], [6, 'validation_failed', 'line']]);
    const eve = await row('eve@example.com');
    assert.deepEqual([eve.roles, eve.emailVerified, eve.importSource], [['editor'], true, 'auth0']);
    assert.equal((await row('fay@example.com')).status, 'disabled');
    assert.equal((await row('gus@example.com')).passwordHash, null, 'a social user imports without a password');
    await logsInAndUpgrades('eve@example.com', password);
    const again = importCli(['--from', 'auth0', path]);
    assert.deepEqual([again.report.created, again.report.skipped], [0, 3]);
  });
});

describe('Firebase export', () => {
  test('auth:export JSON with the project hash config (the published test vector); console text form of the config', async () => {
    const v = FIREBASE_VECTOR;
    const users = {
      users: [
        { localId: 'u1', email: 'user1@example.com', emailVerified: true, passwordHash: v.passwordHash, salt: v.salt, customAttributes: '{"roles":["viewer"]}' },
        { localId: 'u2', email: 'user2@example.com', disabled: true, passwordHash: v.passwordHash, salt: v.salt },
        { localId: 'u3', phoneNumber: '+15555550100' },
      ],
    };
    const path = file('firebase-users.json', JSON.stringify(users));
    // Without the hash config, hashed records cannot be imported.
    const missing = importCli(['--from', 'firebase', path]);
    assert.deepEqual(missing.report.errors.map((e: any) => [e.record, e.field]), [[1, 'passwordHash'], [2, 'passwordHash'], [3, 'email']]);
    assert.equal(missing.report.created, 0);

    const c = v.hashConfig;
    const consoleText = `hash_config {\n  algorithm: SCRYPT,\n  base64_signer_key: ${c.base64_signer_key},\n  base64_salt_separator: ${c.base64_salt_separator},\n  rounds: ${c.rounds},\n  mem_cost: ${c.mem_cost},\n}\n`;
    const first = importCli(['--from', 'firebase', path, '--hash-config', file('firebase-hash.txt', consoleText)]);
    assert.deepEqual([first.report.created, first.report.failed], [2, 1]);
    const user1 = await row('user1@example.com');
    assert.deepEqual([user1.roles, user1.emailVerified, user1.importSource], [['viewer'], true, 'firebase']);
    assert.equal((await row('user2@example.com')).status, 'disabled');
    await logsInAndUpgrades('user1@example.com', v.password);

    const again = importCli(['--from', 'firebase', path, '--hash-config', file('firebase-hash.json', JSON.stringify({ hash_config: c }))]);
    assert.deepEqual([again.report.created, again.report.skipped], [0, 2]);
  });
});

describe('progress', () => {
  test('without a terminal: JSON progress lines on stderr ending with the final figures; the report on stdout', () => {
    const lines = Array.from({ length: 2500 }, (_, i) => JSON.stringify({ email: `bulk${i}@example.com` }));
    const { report, stderr } = importCli([file('bulk.ndjson', lines.join('\n') + '\n{"email":"x"}\n')]);
    assert.deepEqual([report.created, report.failed], [2500, 1]);
    const progress = stderr.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(progress.at(-1), { ...progress.at(-1), progress: 'users', done: 2501, total: 2501, errors: 1, finished: true });
    assert.ok(progress.every((p) => typeof p.rate_per_s === 'number'));
  });
});
