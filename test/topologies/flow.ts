// What every Redis topology must do: the whole token flow, and refreshes that
// keep failing closed while the primary fails over.
import assert from 'node:assert/strict';
import * as oauth from 'openid-client';
import { basic, postForm, type TestService } from '../support/service.ts';

export async function tokenFlow(svc: TestService): Promise<void> {
  const client = await svc.client();
  const user = await svc.user();
  const cfg = await svc.oauth(client);
  const login = () => oauth.genericGrantRequest(cfg, 'password', { username: user.email, password: user.password });

  // Rotation: every refresh returns a new refresh token.
  const first = await login();
  const second = await oauth.refreshTokenGrant(cfg, first.refresh_token!);
  const third = await oauth.refreshTokenGrant(cfg, second.refresh_token!);
  assert.equal(new Set([first.refresh_token, second.refresh_token, third.refresh_token]).size, 3);
  assert.equal((await oauth.tokenIntrospection(cfg, third.refresh_token!)).active, true);

  // Reuse of a rotated token revokes the family, newest token included.
  await assert.rejects(oauth.refreshTokenGrant(cfg, second.refresh_token!), { error: 'invalid_grant' });
  await assert.rejects(oauth.refreshTokenGrant(cfg, third.refresh_token!), { error: 'invalid_grant' });
  assert.equal((await oauth.tokenIntrospection(cfg, third.refresh_token!)).active, false);

  // 20 parallel refreshes with one token: exactly one wins.
  const { refresh_token: rt } = await login();
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => oauth.refreshTokenGrant(cfg, rt!)));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as { error?: string }).error, 'invalid_grant');

  // Revocation.
  const revoked = await login();
  await oauth.tokenRevocation(cfg, revoked.refresh_token!);
  assert.equal((await oauth.tokenIntrospection(cfg, revoked.refresh_token!)).active, false);
  await assert.rejects(oauth.refreshTokenGrant(cfg, revoked.refresh_token!), { error: 'invalid_grant' });

  // Revoking an account's sessions (admin path) kills every login of it.
  const a = await login();
  const b = await login();
  assert.ok((await svc.services.accounts.revokeSessions(user.id, { actor: 'test' })) >= 2);
  for (const t of [a, b]) await assert.rejects(oauth.refreshTokenGrant(cfg, t.refresh_token!), { error: 'invalid_grant' });
}

type Family = { tokens: string[]; dead: boolean; okAfter: number };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Several token families refresh in a loop while `failover` kills the Redis
 * primary and waits for the topology to heal. Checks that every answer failed
 * closed, that service came back, and that no family ends with two live
 * refresh tokens (and a surviving family's newest token is live).
 */
export async function refreshThroughFailover(svc: TestService, failover: () => Promise<void>): Promise<Record<string, number>> {
  const client = await svc.client();
  const user = await svc.user();
  const auth = { authorization: basic(client.id, client.secret) };
  const token = (form: Record<string, string>) => postForm(`${svc.config.issuer}/token`, form, auth);
  const cfg = await svc.oauth(client);

  const families: Family[] = [];
  for (let i = 0; i < 6; i++) {
    const res = await token({ grant_type: 'password', username: user.email, password: user.password });
    assert.equal(res.status, 200, res.text);
    families.push({ tokens: [res.body.refresh_token as string], dead: false, okAfter: 0 });
  }

  const outcomes: Record<string, number> = {};
  let healed = false;
  let stopped = false;
  let slowestFailure = 0;
  const deadline = Date.now() + 90_000;
  const refreshLoop = async (f: Family) => {
    for (let attempt = 0; attempt < 2000 && Date.now() < deadline && !stopped; attempt++) {
      const res = await token({ grant_type: 'refresh_token', refresh_token: f.tokens.at(-1)! });
      const outcome = `${res.status} ${String(res.body.error ?? '')}`.trim();
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      if (res.status !== 200) slowestFailure = Math.max(slowestFailure, res.ms);
      if (res.status === 200) {
        assert.match(res.body.refresh_token as string, /^[A-Za-z0-9_-]{43,}$/);
        f.tokens.push(res.body.refresh_token as string);
        if (healed && ++f.okAfter >= 3) return;
      } else if (res.status === 503) {
        await sleep(50);
      } else {
        // The only other acceptable answer: the token was consumed by a request
        // whose answer was lost, so the retry counts as reuse.
        assert.equal(outcome, '400 invalid_grant', res.text);
        f.dead = true;
        return;
      }
      await sleep(10);
    }
  };

  const loops = Promise.all(families.map(refreshLoop));
  try {
    await sleep(500);
    assert.ok(families.every((f) => f.tokens.length > 1), 'refreshes were flowing before the failover');
    await failover();
  } catch (err) {
    stopped = true;
    await loops.catch(() => {});
    throw err;
  }
  healed = true;
  await loops;

  assert.ok(Object.keys(outcomes).some((o) => o !== '200'), `no request failed during the switch: ${JSON.stringify(outcomes)}`);
  // Coarse fail-fast check (the target is ~2 s): nothing waits for the failover.
  assert.ok(slowestFailure < 5000, `a failed request took ${Math.round(slowestFailure)} ms`);
  assert.ok(families.every((f) => f.dead || f.okAfter >= 3), `some families never refreshed again: ${JSON.stringify(outcomes)}`);

  // Service is back: a new login refreshes.
  const fresh = await oauth.genericGrantRequest(cfg, 'password', { username: user.email, password: user.password });
  await oauth.refreshTokenGrant(cfg, fresh.refresh_token!);

  for (const f of families) {
    const active = [];
    for (const t of f.tokens) if ((await oauth.tokenIntrospection(cfg, t)).active) active.push(t);
    assert.ok(active.length <= 1, `a family has ${active.length} live refresh tokens`);
    if (f.dead) assert.equal(active.length, 0, 'a revoked family still has a live refresh token');
    else assert.deepEqual(active, [f.tokens.at(-1)], "a surviving family's newest token is not the live one");
  }
  return { ...outcomes, slowestFailureMs: Math.round(slowestFailure) };
}
