// Trickle migration through an HTTP hook (LEGACY_IDP_MODE=hook): the hook,
// served here as the legacy side would, checks the shared secret and answers
// {valid, profile}; a yes creates the user with the profile's address,
// verification and mapped roles; a no is invalid_grant; a hook that refuses
// our secret is an outage (503), never a created user.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { gatewayFor } from './support/admin.ts';
import { startTestService, type TestService } from './support/service.ts';

const SECRET = 'hook secret of the legacy side, 32+';
const legacyUsers: Record<string, { password: string; profile: object }> = {
  'Hana@Legacy.Example': { password: 'hana legacy pw 1', profile: { email: 'hana@legacy.example', email_verified: true, roles: ['legacy-admin', 'viewer', 'unknown-role'] } },
  'ivo@legacy.example': { password: 'ivo legacy pw 22', profile: {} },
};
const seen: { auth: string | undefined; body: { username: string; password: string } }[] = [];
let expectedSecret = SECRET;

const hook = createServer((req, res) => {
  let text = '';
  req.setEncoding('utf8').on('data', (c: string) => (text += c));
  req.on('end', () => {
    const body = JSON.parse(text) as { username: string; password: string };
    seen.push({ auth: req.headers.authorization, body });
    if (req.headers.authorization !== `Bearer ${expectedSecret}`) return void res.writeHead(401).end();
    const user = Object.entries(legacyUsers).find(([name]) => name.toLowerCase() === body.username.toLowerCase())?.[1];
    const valid = !!user && user.password === body.password;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(valid ? { valid, profile: user.profile } : { valid }));
  });
});

let svc: TestService;
let gw: Awaited<ReturnType<typeof gatewayFor>>;
before(async () => {
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
  svc = await startTestService({
    LEGACY_IDP_MODE: 'hook',
    LEGACY_IDP_HOOK_URL: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/verify`,
    LEGACY_IDP_HOOK_SECRET: SECRET,
    LEGACY_IDP_ROLE_MAP: 'legacy-admin=admin',
    LEGACY_IDP_SOURCE: 'old-ldap',
    ROLES: 'admin viewer',
  });
  gw = await gatewayFor(svc);
});
after(async () => {
  await svc.stop();
  await new Promise((r) => hook.close(r));
});
const row = (email: string) => svc.stores.db.user.findUnique({ where: { email } });

test('a yes from the hook creates the user with the profile: address, verification, mapped roles', async () => {
  assert.ok((await gw.login('Hana@Legacy.Example', 'hana legacy pw 1')).access_token);
  assert.deepEqual(seen.at(-1), { auth: `Bearer ${SECRET}`, body: { username: 'Hana@Legacy.Example', password: 'hana legacy pw 1' } });
  const hana = await row('hana@legacy.example');
  assert.deepEqual([[...hana!.roles].sort(), hana!.emailVerified, hana!.importSource], [['admin', 'viewer'], true, 'old-ldap']);
  assert.match(hana!.passwordHash!, /^\$argon2id\$/);
  assert.ok((await gw.login('ivo@legacy.example', 'ivo legacy pw 22')).access_token);
  assert.deepEqual([(await row('ivo@legacy.example'))!.roles, (await row('ivo@legacy.example'))!.emailVerified], [[], false]);
});

test('a no from the hook is invalid_grant and creates nothing', async () => {
  await assert.rejects(gw.login('jan@legacy.example', 'whatever pw 333'), (e: any) => e.error === 'invalid_grant');
  await assert.rejects(gw.login('ivo2@legacy.example', 'ivo legacy pw 22'), (e: any) => e.error === 'invalid_grant');
  assert.equal(await row('jan@legacy.example'), null);
});

test('a hook that refuses our secret is an outage: 503, no user', async () => {
  legacyUsers['kim@legacy.example'] = { password: 'kim legacy pw 4444', profile: {} };
  expectedSecret = 'rotated on the legacy side only';
  try {
    const err: any = await gw.login('kim@legacy.example', 'kim legacy pw 4444').then(() => assert.fail('logged in'), (e: unknown) => e);
    const response: Response = err.cause; // openid-client leaves a non-400 response to the caller
    assert.equal(response.status, 503);
    assert.equal(((await response.json()) as { error: string }).error, 'temporarily_unavailable');
    assert.equal(await row('kim@legacy.example'), null);
  } finally {
    expectedSecret = SECRET;
  }
  assert.ok((await gw.login('kim@legacy.example', 'kim legacy pw 4444')).access_token);
  assert.ok(!svc.logs.text.includes('kim legacy pw 4444') && !svc.logs.text.includes(SECRET), 'no password, no secret in the logs');
});
