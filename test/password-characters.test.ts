// A password /token would refuse (NUL, other control characters, a lone
// surrogate, bytes that are not UTF-8) is refused wherever a password is set:
// admin creation, registration, change, reset completion, the CLI and the
// bootstrap admin. Otherwise the account could never log in.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { adminToken, call, gatewayFor } from './support/admin.ts';
import { freshDatabase, startTestService, type TestService } from './support/service.ts';

let svc: TestService;
let gw: Awaited<ReturnType<typeof gatewayFor>>;
let token: string;
before(async () => {
  svc = await startTestService({ REGISTRATION_MODE: 'open' });
  gw = await gatewayFor(svc);
  token = (await adminToken(svc, gw)).token;
});
after(() => svc.stop());

const fine = 'a perfectly fine passphrase';
const BAD = { NUL: `${fine}\u0000`, LF: `${fine}\nsecond line`, ESC: `\u001b[2J${fine}`, C1: `${fine}\u009b`, 'lone surrogate': `${fine}\ud83d` };

function refused(res: { status: number; body: Record<string, any> }, what: string) {
  assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.field, 'password', what);
  assert.match(res.body.error_description, /\(password_invalid_characters\)$/, what);
}

test('admin creation, registration, change and reset completion refuse them', async () => {
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

test('the CLI and the bootstrap admin refuse them, and bytes that are not UTF-8', async () => {
  const db = await freshDatabase();
  const dir = await mkdtemp(join(tmpdir(), 'idp-pwchars-'));
  const kek = randomBytes(32).toString('base64');
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
