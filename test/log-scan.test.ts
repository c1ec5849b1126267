// Logs: a black-box run through every public flow (success, failures,
// throttling, 429, bad input, refresh, grace replay, reuse, introspection,
// revocation, client credentials) while capturing every log line; no
// password, token, client secret or Authorization value may appear, and
// every password login attempt is logged with exactly one outcome code
// (refusals repeatable at request rate are sampled beyond the first in 10 s:
// test/bounded-volume.test.ts; this run has one of each).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { basic, postForm, startTestService } from './support/service.ts';
import { passwordLogin, refresh, trustedGateway } from './support/security.ts';

test('a whole black-box run leaves no secret in the logs and one outcome per login attempt', async () => {
  const svc = await startTestService({
    LOGIN_FREE_FAILURES: '1',
    LOGIN_BLOCK_BASE_SECONDS: '60',
    LOGIN_IP_MAX_FAILURES: '4',
    REFRESH_REUSE_GRACE_SECONDS: '5',
  });
  try {
    const secrets: string[] = [];
    const keep = <T extends string | undefined>(v: T): T => (v && secrets.push(v), v);
    const gw = await trustedGateway(svc);
    const plain = await svc.client({ grantTypes: ['password', 'refresh_token', 'client_credentials'] });
    const user = await svc.user({ password: 'Tr0ub4dor&3-log-scan' });
    for (const c of [gw, plain]) {
      keep(c.secret);
      keep(basic(c.id, c.secret).slice('Basic '.length));
      keep(basic(c.id, c.secret));
    }
    keep(user.password);
    const token = `${svc.config.issuer}/token`;
    let attempts = 0;
    const login = async (client: typeof gw, password: string, ip: string) => {
      attempts++;
      keep(password);
      const r = await passwordLogin(svc, client, user.email, password, { 'x-end-user-ip': ip });
      keep(r.body.access_token as string | undefined);
      keep(r.body.refresh_token as string | undefined);
      return r;
    };

    const ok = await login(gw, user.password, '192.0.2.1');
    assert.equal(ok.status, 200);
    await login(gw, 'wrong-password-one', '192.0.2.2');
    await login(gw, 'wrong-password-two', '192.0.2.2'); // blocks the pair
    assert.equal((await login(gw, user.password, '192.0.2.2')).status, 400); // throttled
    await login(gw, 'wrong-password-three', '192.0.2.2'); // the IP's 4th failure...
    assert.equal((await login(gw, 'wrong-password-four', '192.0.2.2')).status, 429); // ...then 429

    // client_secret_post and a bad client secret
    const post = await postForm(token, { grant_type: 'password', username: user.email, password: keep('post-password-xyz'), client_id: plain.id, client_secret: plain.secret });
    attempts++;
    assert.equal(post.status, 400);
    await postForm(token, { grant_type: 'password', username: user.email, password: user.password }, { authorization: keep(basic(plain.id, 'not-the-secret-at-all')) });

    // refresh, grace replay, real reuse
    const r1 = await refresh(svc, gw, ok.body.refresh_token as string);
    keep(r1.body.access_token as string);
    keep(r1.body.refresh_token as string);
    await refresh(svc, gw, ok.body.refresh_token as string);
    const r2 = await refresh(svc, gw, r1.body.refresh_token as string);
    keep(r2.body.access_token as string);
    keep(r2.body.refresh_token as string);
    await refresh(svc, gw, ok.body.refresh_token as string); // not the predecessor: reuse, family revoked

    // introspection, revocation, client credentials, malformed input carrying a password
    const auth = { authorization: basic(plain.id, plain.secret) };
    await postForm(`${token}/introspection`, { token: r2.body.refresh_token as string }, auth);
    await postForm(`${token}/revocation`, { token: r2.body.refresh_token as string }, auth);
    const cc = await postForm(token, { grant_type: 'client_credentials', scope: 'api:read' }, auth);
    keep(cc.body.access_token as string);
    await postForm(token, `grant_type=password&username=a&password=${keep('nul-password-abc')}%00`, auth);
    await postForm(token, `grant_type=password&username=a&password=${keep('dup-password-abc')}&password=x`, auth);

    const text = svc.logs.text;
    for (const s of secrets.filter((s) => s.length >= 8)) assert.ok(!text.includes(s), `a secret reached the logs: ${s.slice(0, 4)}…`);
    assert.ok(!text.includes(user.email), 'usernames are not logged');

    const outcomes = svc.logs.lines
      .map((l) => JSON.parse(l) as { outcome?: string })
      .filter((l) => l.outcome?.startsWith('login.') && l.outcome !== 'login.spraying_suspected')
      .map((l) => l.outcome);
    assert.equal(outcomes.length, attempts, outcomes.join(', '));
    for (const o of ['login.succeeded', 'login.failed', 'login.throttled', 'login.rate_limited']) assert.ok(outcomes.includes(o), o);
    assert.ok(svc.logs.lines.some((l) => l.includes('"outcome":"refresh.reuse"')));
    assert.ok(svc.logs.lines.some((l) => l.includes('"outcome":"refresh.grace_replay"')));
  } finally {
    await svc.stop();
  }
});
