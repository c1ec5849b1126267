// Password reset by email against a real SMTP server started here
// (smtp-server on a loopback port), admin-forced resets, and the
// self-service password change.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { call, gatewayAndAdmin, gatewayFor, type Json } from './support/admin.ts';
import { startTestService, type TestService } from './support/service.ts';
import { TestMailbox, tokenIn } from './support/smtp.ts';

const mailbox = new TestMailbox();
const inbox = mailbox.inbox;
const mailFor = (address: string, count?: number) => mailbox.mailFor(address, count);
let svc: TestService;
let gw: Awaited<ReturnType<typeof gatewayFor>>;
let token: string;

const pub = (path: string, body: unknown, bearer?: string) => call(svc.publicUrl, 'POST', path, { body, token: bearer });

before(async () => {
  await mailbox.start();
  svc = await startTestService({
    SMTP_URL: mailbox.url,
    MAIL_FROM: 'identity@example.com',
    PASSWORD_RESET_URL: 'https://app.example.com/reset',
  });
  ({ gw, token } = await gatewayAndAdmin(svc));
});
after(async () => {
  await svc.stop();
  await mailbox.close();
});

async function auditTypes(subject: string): Promise<string[]> {
  const res = await call(svc.adminUrl, 'GET', `/admin/audit?subject=${subject}`, { token });
  return res.body.items.map((e: Json) => e.type);
}

describe('password reset by email', () => {
  test('end to end through the SMTP message; single use; revokes every grant', async () => {
    const u = await svc.user({ email: 'reset.me@example.com' });
    const session = await gw.login(u.email, u.password);

    const res = await pub('/password/forgot', { email: 'Reset.Me@EXAMPLE.com' });
    assert.equal(res.status, 202);
    const mail = await mailFor('reset.me@example.com');
    assert.match(mail.raw, /From: identity@example.com/);
    assert.match(mail.text, /https:\/\/app\.example\.com\/reset\?token=/);
    const resetToken = tokenIn(mail);
    assert.ok(Buffer.from(resetToken, 'base64url').length >= 16, 'at least 128 bits');

    // Only a hash is stored.
    const rows = await svc.stores.db.passwordResetToken.findMany({ where: { userId: u.id } });
    assert.equal(rows.length, 1);
    assert.notEqual(rows[0]!.tokenHash, resetToken);
    const ttl = rows[0]!.expiresAt.getTime() - rows[0]!.createdAt.getTime();
    assert.ok(ttl > 29 * 60_000 && ttl <= 30 * 60_000 + 1000, `ttl ${ttl}`);

    const weak = await pub('/password/reset', { token: resetToken, password: 'short' });
    assert.equal(weak.status, 400);
    assert.equal(weak.body.field, 'password');

    const newPassword = 'my brand new passphrase';
    assert.equal((await pub('/password/reset', { token: resetToken, password: newPassword })).status, 204);
    await assert.rejects(gw.refresh(session.refresh_token!), (e: any) => e.error === 'invalid_grant');
    await assert.rejects(gw.login(u.email, u.password));
    assert.ok((await gw.login(u.email, newPassword)).access_token);

    const again = await pub('/password/reset', { token: resetToken, password: 'yet another new passphrase' });
    assert.equal(again.status, 400);
    assert.equal(again.body.field, 'token');

    const types = await auditTypes(u.id);
    assert.ok(types.includes('password.reset_requested') && types.includes('password.reset'), types.join());
  });

  test('the request answers the same whether or not the account exists; only real accounts get mail', async () => {
    const u = await svc.user({ email: 'exists@example.com' });
    const disabled = await svc.user({ email: 'disabled@example.com' });
    await call(svc.adminUrl, 'PATCH', `/admin/users/${disabled.id}`, { token, body: { status: 'disabled' } });
    const before = inbox.length;
    const answers = [];
    for (const email of ['nobody@example.com', 'disabled@example.com', 'not an email', u.email]) {
      const res = await pub('/password/forgot', { email });
      answers.push({ status: res.status, body: res.body });
    }
    for (const a of answers) assert.deepEqual(a, answers.at(-1));
    await mailFor(u.email);
    assert.equal(inbox.length - before, 1);
    assert.deepEqual(inbox.at(-1)!.to, ['exists@example.com']);
    assert.equal((await pub('/password/forgot', {})).status, 400);
  });

  test('an expired or unknown token is refused', async () => {
    const u = await svc.user({ email: 'expired@example.com' });
    await pub('/password/forgot', { email: u.email });
    const resetToken = tokenIn(await mailFor(u.email));
    await svc.stores.db.passwordResetToken.updateMany({ where: { userId: u.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const res = await pub('/password/reset', { token: resetToken, password: 'a fine new passphrase' });
    assert.equal(res.status, 400);
    assert.equal(res.body.field, 'token');
    assert.equal((await pub('/password/reset', { token: 'x'.repeat(43), password: 'a fine new passphrase' })).status, 400);
  });

  test('an admin can force a reset: the old password and sessions stop at once', async () => {
    const u = await svc.user({ email: 'forced@example.com' });
    const session = await gw.login(u.email, u.password);
    const res = await call(svc.adminUrl, 'POST', `/admin/users/${u.id}/reset-password`, { token });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { email_sent: true });
    await assert.rejects(gw.login(u.email, u.password));
    await assert.rejects(gw.refresh(session.refresh_token!));
    const resetToken = tokenIn(await mailFor(u.email));
    assert.equal((await pub('/password/reset', { token: resetToken, password: 'chosen after the force' })).status, 204);
    assert.ok((await gw.login(u.email, 'chosen after the force')).access_token);
    assert.ok((await auditTypes(u.id)).includes('password.reset_forced'));
    assert.equal((await call(svc.adminUrl, 'POST', '/admin/users/00000000-0000-4000-8000-000000000000/reset-password', { token })).status, 404);
  });
});

describe('password change by the logged-in user', () => {
  test('needs the Bearer token and the current password; revokes refresh tokens', async () => {
    const u = await svc.user({ email: 'changer@example.com' });
    const a = await gw.login(u.email, u.password);
    const b = await gw.login(u.email, u.password);
    const next = 'a changed passphrase here';

    assert.equal((await pub('/account/password', { current_password: u.password, new_password: next })).status, 401);
    const wrong = await pub('/account/password', { current_password: 'not it at all', new_password: next }, a.access_token);
    assert.equal(wrong.status, 403);
    assert.equal(wrong.body.field, 'current_password');
    const weak = await pub('/account/password', { current_password: u.password, new_password: 'qwertyuiop' }, a.access_token);
    assert.equal(weak.status, 400);
    assert.equal(weak.body.field, 'password');
    // Still the old password after the refusals.
    assert.ok((await gw.refresh(b.refresh_token!)).access_token);

    const ok = await pub('/account/password', { current_password: u.password, new_password: next }, a.access_token);
    assert.equal(ok.status, 204);
    await assert.rejects(gw.refresh(a.refresh_token!));
    await assert.rejects(gw.login(u.email, u.password));
    assert.ok((await gw.login(u.email, next)).access_token);
    const types = await auditTypes(u.id);
    assert.ok(types.includes('password.changed'));
  });
});
