// The password policy through the service (the characters /token refuses are
// refused at every place a password is set: admin creation, registration,
// change, reset, CLI, bootstrap), hash agility (bcrypt import and upgrade,
// rehash after a config change), bulk import, and the bootstrap admin.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../src/config/index.ts';
import { adminConsoleFor, call, gatewayAndAdmin, gatewayFor } from './support/admin.ts';
import { htpasswdBcrypt, mkpasswdBcrypt, pythonBcrypt } from './support/hash-fixtures.ts';
import { freshDatabase, startTestService, type TestService } from './support/service.ts';

const kek = randomBytes(32).toString('base64');

// What /token refuses in a password, so no place that sets one may accept it.
const fine = 'a perfectly fine passphrase';
const BAD = { NUL: `${fine}\u0000`, LF: `${fine}\nsecond line`, ESC: `\u001b[2J${fine}`, C1: `${fine}\u009b`, 'lone surrogate': `${fine}\ud83d` };

function refused(res: { status: number; body: Record<string, any> }, what: string) {
  assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.field, 'password', what);
  assert.match(res.body.error_description, /\(password_invalid_characters\)$/, what);
}

describe('passwords through the service', () => {
  let svc: TestService;
  let gw: Awaited<ReturnType<typeof gatewayFor>>;
  let token: string;
  before(async () => {
    svc = await startTestService({ REGISTRATION_MODE: 'open' });
    ({ gw, token } = await gatewayAndAdmin(svc));
  });
  after(() => svc.stop());

  test('policy violations are specific 400s on registration and admin creation', async () => {
    const short = await call(svc.publicUrl, 'POST', '/register', { body: { email: 'p1@example.com', password: 'short' } });
    assert.equal(short.status, 400);
    assert.equal(short.body.field, 'password');
    assert.match(short.body.error_description, /at least 12 characters/);
    const common = await call(svc.adminUrl, 'POST', '/admin/users', {
      token,
      body: { email: 'p2@example.com', password: 'password1234' },
    });
    assert.equal(common.status, 400);
    assert.match(common.body.error_description, /common/);
  });

  test('NUL, control characters and lone surrogates are refused by admin creation, registration, change and reset completion', async () => {
    const u = await svc.user();
    const session = await gw.login(u.email, u.password);
    const forced = await call(svc.adminUrl, 'POST', `/admin/users/${(await svc.user()).id}/reset-password`, { token });
    const resetToken = new URL(forced.body.reset_url).searchParams.get('token')!;
    for (const [name, password] of Object.entries(BAD)) {
      refused(await call(svc.adminUrl, 'POST', '/admin/users', { token, body: { email: `c-${randomBytes(3).toString('hex')}@example.com`, password } }), `create ${name}`);
      refused(await call(svc.publicUrl, 'POST', '/register', { body: { email: `r-${randomBytes(3).toString('hex')}@example.com`, password } }), `register ${name}`);
      refused(await call(svc.publicUrl, 'POST', '/account/password', { token: session.access_token, body: { current_password: u.password, new_password: password } }), `change ${name}`);
      refused(await call(svc.publicUrl, 'POST', '/password/reset', { body: { token: resetToken, password } }), `reset ${name}`);
    }
    // None of them took effect: the old password works, the reset link is still unused.
    assert.ok((await gw.login(u.email, u.password)).access_token);
    assert.equal((await call(svc.publicUrl, 'POST', '/password/reset', { body: { token: resetToken, password: fine } })).status, 204);
  });

  test('NFC and NFD spellings of a password are the same password', async () => {
    const nfc = 'Crème brûlée à la façon'.normalize('NFC');
    const nfd = nfc.normalize('NFD');
    assert.notEqual(nfc, nfd);
    const reg = await call(svc.publicUrl, 'POST', '/register', { body: { email: 'unicode@example.com', password: nfd } });
    assert.equal(reg.status, 202);
    assert.ok((await gw.login('unicode@example.com', nfc)).access_token);
    assert.ok((await gw.login('unicode@example.com', nfd)).access_token);
  });

  test('no truncation: a long password does not match on its first 72 bytes', async () => {
    const password = 'a long password that keeps going '.repeat(3) + 'and ends here';
    assert.ok(Buffer.byteLength(password) > 80);
    const u = await svc.user({ password });
    assert.ok((await gw.login(u.email, password)).access_token);
    await assert.rejects(gw.login(u.email, password.slice(0, 72)), (e: any) => e.error === 'invalid_grant');
  });

  test('existing users log in even when their password no longer passes the policy', async () => {
    const u = await svc.user({ password: 'short1' }); // created directly, as by an older policy
    assert.ok((await gw.login(u.email, 'short1')).access_token);
  });

  test('bcrypt import → login → the hash is argon2id; per-line errors do not stop the import', async () => {
    // Made by other implementations: libxcrypt ($2a$), Python ($2b$), Apache ($2y$).
    const hashes = {
      a: mkpasswdBcrypt('legacy password a', 4, 'a'),
      b: pythonBcrypt('legacy password b', 4),
      y: htpasswdBcrypt('legacy password y', 4),
    };
    const longPw = 'L'.repeat(72) + ' tail that bcrypt never saw';
    const ndjson = [
      JSON.stringify({ email: 'Legacy.A@example.com', roles: ['viewer'], password_hash: hashes.a }),
      JSON.stringify({ email: 'legacy.b@example.com', password_hash: hashes.b }),
      '',
      JSON.stringify({ email: 'legacy.y@example.com', password_hash: hashes.y, status: 'active' }),
      JSON.stringify({ email: 'legacy.long@example.com', password_hash: pythonBcrypt(longPw, 4) }),
      JSON.stringify({ email: 'nopassword@example.com' }),
      '{not json',
      JSON.stringify({ email: 'bad-hash@example.com', password_hash: 'md5:abc' }),
      JSON.stringify({ email: 'legacy.b@example.com', password_hash: hashes.b }),
      JSON.stringify({ email: 'role@example.com', roles: ['root'] }),
      JSON.stringify({ email: 'extra@example.com', is_admin: true }),
    ].join('\n');
    const res = await call(svc.adminUrl, 'POST', '/admin/users/import', { token, raw: ndjson, type: 'application/x-ndjson' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.created, 5);
    assert.deepEqual(
      res.body.errors.map((e: any) => [e.line, e.error, e.field]),
      [
        [7, 'validation_failed', 'line'],
        [8, 'validation_failed', 'password_hash'],
        [9, 'conflict', 'email'],
        [10, 'validation_failed', 'roles'],
        [11, 'validation_failed', 'is_admin'],
      ],
    );
    const stats = async () => (await call(svc.adminUrl, 'GET', '/admin/users/stats', { token })).body.legacy_hashes;
    assert.equal(await stats(), 4);

    const hashOf = async (email: string) =>
      (await svc.stores.db.user.findUniqueOrThrow({ where: { email } })).passwordHash;
    for (const k of ['a', 'b', 'y'] as const) {
      await assert.rejects(gw.login(`legacy.${k}@example.com`, 'wrong password'));
      assert.match((await hashOf(`legacy.${k}@example.com`))!, /^\$2/);
      assert.ok((await gw.login(`legacy.${k}@example.com`, `legacy password ${k}`)).access_token);
      assert.match((await hashOf(`legacy.${k}@example.com`))!, /^\$argon2id\$/);
      assert.ok((await gw.login(`legacy.${k}@example.com`, `legacy password ${k}`)).access_token);
    }
    assert.equal(await stats(), 1);
    // bcrypt saw only the first 72 bytes: those are verified, then argon2id of the
    // whole password replaces the hash, and from then on every byte counts.
    assert.ok((await gw.login('legacy.long@example.com', longPw)).access_token);
    assert.match((await hashOf('legacy.long@example.com'))!, /^\$argon2id\$/);
    await assert.rejects(gw.login('legacy.long@example.com', longPw.slice(0, 72) + 'something else'));
    assert.equal(await stats(), 0);
    await assert.rejects(gw.login('nopassword@example.com', ''), (e: any) => e.error === 'invalid_request');
    await assert.rejects(gw.login('nopassword@example.com', 'anything at all'), (e: any) => e.error === 'invalid_grant');
  });
});

test('rehash after an argon2 config change, on the next successful login', async () => {
  const db = await freshDatabase();
  const password = 'rehash me please';
  try {
    const first = await startTestService({ ARGON2_TIME_COST: '2', KEY_ENCRYPTION_KEY: kek }, { databaseUrl: db.url });
    const u = await first.user({ password });
    await first.stop();
    const second = await startTestService({ ARGON2_TIME_COST: '3', KEY_ENCRYPTION_KEY: kek }, { databaseUrl: db.url });
    try {
      const hash = async () => (await second.stores.db.user.findUniqueOrThrow({ where: { id: u.id } })).passwordHash!;
      assert.match(await hash(), /\$m=19456,p=1,t=2\$/);
      const gw = await gatewayFor(second);
      await assert.rejects(gw.login(u.email, 'not the password'));
      assert.match(await hash(), /\$m=19456,p=1,t=2\$/);
      await gw.login(u.email, password);
      assert.match(await hash(), /\$m=19456,p=1,t=3\$/);
    } finally {
      await second.stop();
    }
  } finally {
    await db.drop();
  }
});

test('bootstrap admin from env: created once, idempotent, no default credentials', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(join(tmpdir(), 'idp-bootstrap-'));
  const file = join(dir, 'password');
  const password = `bootstrap-${randomBytes(8).toString('hex')}`;
  await writeFile(file, `${password}\n`);
  const env = { ADMIN_BOOTSTRAP_EMAIL: 'Root@Example.com', ADMIN_BOOTSTRAP_PASSWORD_FILE: file, KEY_ENCRYPTION_KEY: kek };
  try {
    const plain = await startTestService({ KEY_ENCRYPTION_KEY: kek }, { databaseUrl: db.url });
    assert.equal(await plain.stores.db.user.count(), 0);
    await plain.stop();
    for (let boot = 0; boot < 2; boot++) {
      const svc = await startTestService(env, { databaseUrl: db.url });
      try {
        const users = await svc.stores.db.user.findMany();
        assert.equal(users.length, 1);
        assert.deepEqual(users[0]!.roles, ['admin']);
        assert.equal(users[0]!.email, 'root@example.com');
        const t = await (await adminConsoleFor(svc)).login('root@example.com', password);
        const res = await call(svc.adminUrl, 'GET', '/admin/users', { token: t.access_token });
        assert.equal(res.status, 200);
      } finally {
        await svc.stop();
      }
    }
    assert.throws(() => loadConfig({ ADMIN_BOOTSTRAP_EMAIL: 'a@example.com' }), /ADMIN_BOOTSTRAP_PASSWORD_FILE/);
    await assert.rejects(
      startTestService({ ADMIN_BOOTSTRAP_EMAIL: 'x@example.com', ADMIN_BOOTSTRAP_PASSWORD_FILE: join(dir, 'missing'), KEY_ENCRYPTION_KEY: kek }, { databaseUrl: db.url }),
      /ADMIN_BOOTSTRAP_PASSWORD_FILE/,
    );
  } finally {
    await db.drop();
  }
});

test('the CLI and the bootstrap admin refuse such passwords, and bytes that are not UTF-8', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(join(tmpdir(), 'idp-pwchars-'));
  try {
    const cli = new URL('../src/cli.ts', import.meta.url).pathname;
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, DATABASE_URL: db.url, KEY_ENCRYPTION_KEY: kek, LOG_LEVEL: 'silent' };
    const inputs: Record<string, Buffer> = {
      ...Object.fromEntries(Object.entries(BAD).filter(([name]) => name !== 'lone surrogate').map(([n, p]) => [n, Buffer.from(p)])),
      'a surrogate as WTF-8 (ED A0 BD)': Buffer.concat([Buffer.from(fine), Buffer.from([0xed, 0xa0, 0xbd])]),
      'Latin-1 é': Buffer.concat([Buffer.from(fine), Buffer.from([0xe9])]),
    };
    for (const [name, input] of Object.entries(inputs)) {
      const r = spawnSync(process.execPath, [cli, 'users', 'create', '--email', 'cli@example.com', '--password-stdin'], { env, input, encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 2, `CLI ${name}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /password must (not contain|be valid UTF-8)/, name);
    }
    const ok = spawnSync(process.execPath, [cli, 'users', 'create', '--email', 'cli@example.com', '--password-stdin'], { env, input: `${fine}\n`, encoding: 'utf8', timeout: 60_000 });
    assert.equal(ok.status, 0, ok.stderr);

    const file = join(dir, 'password');
    for (const [name, bytes] of Object.entries(inputs)) {
      await writeFile(file, bytes);
      await assert.rejects(
        startTestService({ ADMIN_BOOTSTRAP_EMAIL: 'root@example.com', ADMIN_BOOTSTRAP_PASSWORD_FILE: file, KEY_ENCRYPTION_KEY: kek }, { databaseUrl: db.url }),
        /ADMIN_BOOTSTRAP: password must (not contain|be valid UTF-8)/,
        `bootstrap ${name}`,
      );
    }
  } finally {
    await db.drop();
  }
});

test('the CLI imports NDJSON and reports per-line errors', async () => {
  const db = await freshDatabase();
  try {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, DATABASE_URL: db.url, KEY_ENCRYPTION_KEY: kek, LOG_LEVEL: 'silent' };
    const input = [
      JSON.stringify({ email: 'cli.one@example.com', roles: ['viewer'], password_hash: mkpasswdBcrypt('cli password one', 4) }),
      JSON.stringify({ email: 'cli.two@example.com', status: 'pending' }),
      JSON.stringify({ email: 'broken' }),
    ].join('\n');
    const cli = new URL('../src/cli.ts', import.meta.url).pathname;
    const r = spawnSync(process.execPath, [cli, 'users', 'import'], { env, input, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.created, 2);
    assert.deepEqual(report.errors.map((e: { line: number; field: string }) => [e.line, e.field]), [[3, 'email']]);
  } finally {
    await db.drop();
  }
});
