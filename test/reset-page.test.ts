// The emailed reset link opens a page (issue 12, item 5), in a real browser:
// Debian's headless Chromium driven by playwright-core. The link comes from
// the mail an in-test SMTP server received; a weak password shows the
// policy's error at the field, a good one succeeds, and it then logs in
// through /token. The page loads nothing from another origin and breaks no
// rule of its strict CSP. .ci/run installs chromium; nothing is skipped.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { RESET_PAGE_CSP } from '../src/api/reset-page.ts';
import { gatewayFor } from './support/admin.ts';
import { startTestService, type TestService } from './support/service.ts';
import { linkIn, TestMailbox } from './support/smtp.ts';

const CHROMIUM = '/usr/bin/chromium';
const mailbox = new TestMailbox();
let svc: TestService;
let browser: BrowserContext;
let profile: string;

before(async () => {
  await mailbox.start();
  svc = await startTestService({ SMTP_URL: mailbox.url }); // PASSWORD_RESET_URL: the default, $ISSUER/password/reset
  profile = await mkdtemp(join(tmpdir(), 'idp-chromium-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});
after(async () => {
  await browser?.close();
  await svc.stop();
  await mailbox.close();
  await rm(profile, { recursive: true, force: true });
});

/**
 * A page that records every problem the browser reports: console errors (CSP
 * violations among them; the API's expected 4xx answers are logged as failed
 * loads and checked by the test instead), missing files and foreign requests.
 */
async function watchedPage(): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage();
  const problems: string[] = [];
  const origin = new URL(svc.config.issuer).origin;
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() === 404 && !r.url().endsWith('/favicon.ico')) problems.push(`404: ${r.url()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    if (new URL(r.url()).origin !== origin) problems.push(`foreign request: ${r.url()}`);
  });
  return { page, problems };
}

test('the link from the mail opens the form; a weak password is refused at the field, a good one succeeds and logs in', async () => {
  const user = await svc.user();
  const gw = await gatewayFor(svc);

  // Ask for the link on the page itself (no token): the same JSON API behind it.
  const { page, problems } = await watchedPage();
  const start = await page.goto(`${svc.config.issuer}/password/reset`);
  assert.equal(start!.status(), 200);
  assert.equal(start!.headers()['content-security-policy'], RESET_PAGE_CSP);
  assert.equal(start!.headers()['cache-control'], 'no-store');
  await page.getByLabel('Email address', { exact: true }).fill(user.email);
  await page.getByRole('button', { name: 'Send me a link' }).click();
  await page.getByRole('status').filter({ hasText: 'a link is on its way' }).waitFor();

  const link = linkIn(await mailbox.mailFor(user.email));
  assert.ok(link.startsWith(`${svc.config.issuer}/password/reset?token=`), link);
  const opened = await page.goto(link);
  assert.equal(opened!.status(), 200);
  assert.equal(await page.title(), 'Reset your password');
  const heading = page.getByRole('heading', { level: 1, name: 'Choose a new password' });
  await heading.waitFor();
  assert.match(await page.locator('main').ariaSnapshot(), /textbox "New password"[\s\S]*button "Set password"/);

  const password = page.getByLabel('New password', { exact: true });
  await password.fill('password1234'); // long enough, but one of the most common passwords
  await page.getByRole('button', { name: 'Set password' }).click();
  const error = page.locator('#password-error');
  await error.waitFor({ state: 'visible' });
  assert.equal(await error.textContent(), 'Password is one of the most common passwords.');
  assert.equal(await password.getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate('document.activeElement.id'), 'password', 'focus moves to the field at fault');
  assert.match((await password.getAttribute('aria-describedby'))!, /password-error/, 'the error is announced with the field');
  await assert.rejects(gw.login(user.email, 'password1234'));

  const chosen = 'a sturdy new passphrase from the browser';
  await password.fill(chosen);
  await page.getByRole('button', { name: 'Set password' }).click();
  await page.getByRole('status').filter({ hasText: 'Your password has been changed' }).waitFor();
  assert.equal(await page.locator('#choose').isHidden(), true);

  assert.ok((await gw.login(user.email, chosen)).access_token, 'logs in with the new password');
  await assert.rejects(gw.login(user.email, user.password), (e: any) => e.error === 'invalid_grant');

  // The same link again: used, and the page says so.
  await page.goto(link);
  await page.getByLabel('New password', { exact: true }).fill('yet another sturdy passphrase');
  await page.getByRole('button', { name: 'Set password' }).click();
  await page.getByRole('status').filter({ hasText: 'invalid, already used or expired' }).waitFor();

  assert.deepEqual(problems, []);
  await page.close();
});

test('the page is strict: no inline script or style, own assets only, not frameable', async () => {
  const res = await fetch(`${svc.config.issuer}/password/reset?token=abc`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/html/);
  const csp = res.headers.get('content-security-policy')!;
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https:|\*/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  const html = await res.text();
  assert.doesNotMatch(html, /<script>|<script(?![^>]*\bsrc=)[^>]*>|<style|\bstyle=|\bon[a-z]+=/i, 'no inline script, style or handler');
  assert.doesNotMatch(html, /https?:\/\//, 'no absolute URL: nothing from another origin');
  for (const asset of ['/password/reset.js', '/password/reset.css']) {
    const a = await fetch(`${svc.config.issuer}${asset}`);
    assert.equal(a.status, 200, asset);
  }
});
