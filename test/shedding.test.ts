// CPU protection: with logins saturating the password hashers, excess logins
// are shed at once with 503 + Retry-After, while JWKS and refresh (which hash
// nothing) keep answering.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { basic, startTestService, type TestService } from './support/service.ts';
import { passwordLogin, recordEvents, refresh, trustedGateway, type TestClient } from './support/security.ts';

let svc: TestService;
let gw: TestClient;
before(async () => {
  // A costly hash (≈ 0.1-0.2 s here) and two at a time at most.
  svc = await startTestService({ MAX_CONCURRENT_HASHES: '2', ARGON2_MEMORY_KIB: '65536', ARGON2_TIME_COST: '3' });
  gw = await trustedGateway(svc);
});
after(() => svc.stop());

test('logins beyond the bound are shed with 503; JWKS and refresh keep flowing', async () => {
  const events = recordEvents(svc);
  const u = await svc.user();
  const first = await passwordLogin(svc, gw, u.email, u.password);
  assert.equal(first.status, 200);
  let rt = first.body.refresh_token as string;

  let stop = false;
  const statuses: number[] = [];
  // 8 concurrent login loops, each user from its own address (no throttling).
  const load = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; !stop && i < 200; i++) {
      const r = await passwordLogin(svc, gw, u.email, u.password, { 'x-end-user-ip': `10.30.${w}.${i % 250}` });
      statuses.push(r.status);
      if (r.status === 503) {
        assert.equal(r.body.error, 'temporarily_unavailable');
        assert.ok(Number(r.headers.get('retry-after')) >= 1);
      }
    }
  });

  try {
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      const jwks = await fetch(`${svc.config.issuer}/jwks`);
      const jwksMs = performance.now() - started;
      assert.equal(jwks.status, 200);
      assert.ok(jwksMs < 2000, `JWKS took ${jwksMs} ms under login load`);
      const next = await refresh(svc, gw, rt);
      assert.equal(next.status, 200, next.text);
      assert.ok(next.ms < 2000, `refresh took ${next.ms} ms under login load`);
      rt = next.body.refresh_token as string;
    }
  } finally {
    stop = true;
    await Promise.all(load);
  }
  assert.ok(statuses.includes(200), 'some logins succeed');
  assert.ok(statuses.includes(503), 'excess logins are shed');
  assert.deepEqual([...new Set(statuses)].sort(), [200, 503]);
  assert.ok(events.get('login.shed')?.length);
});

type FloodAnswer = { status: number; body: Record<string, unknown>; retryAfter: string | null };

/** A flood far beyond hashing capacity: many answers, each the refusal (400) or the shed answer (503). */
function assertFloodAnswers(answers: FloodAnswer[]): void {
  assert.ok(answers.length > 100, `${answers.length} answers`);
  assert.deepEqual([...new Set(answers.map((a) => a.status))].sort(), [400, 503]);
  for (const a of answers.filter((x) => x.status === 503)) {
    assert.deepEqual(a.body, { error: 'temporarily_unavailable', error_description: 'too many logins in progress, try again shortly' });
    assert.equal(a.retryAfter, '1');
  }
}

test('a flood of unknown-user logins far beyond hashing capacity: every answer is 400 or 503, shed at the door, nothing is 500', async () => {
  // One slow hash at a time (≈ 7/s here) against 16 connections sending as
  // fast as they are answered: well over 10× capacity. Speed is measured by
  // `npm run bench` (login flood); this checks the answers.
  const flood = await startTestService({ MAX_CONCURRENT_HASHES: '1', ARGON2_MEMORY_KIB: '65536', ARGON2_TIME_COST: '3' });
  try {
    const events = recordEvents(flood);
    const gateway = await trustedGateway(flood);
    const u = await flood.user();
    let rt = (await passwordLogin(flood, gateway, u.email, u.password)).body.refresh_token as string;
    const answers: FloodAnswer[] = [];
    const deadline = Date.now() + 4000;
    const load = Array.from({ length: 16 }, async (_, w) => {
      for (let i = 0; Date.now() < deadline; i++) {
        const r = await passwordLogin(flood, gateway, `nobody-${w}-${i}@example.com`, 'pw', { 'x-end-user-ip': `10.40.${w}.${i % 250}` });
        answers.push({ status: r.status, body: r.body, retryAfter: r.headers.get('retry-after') });
      }
    });
    const cheap: number[] = [];
    while (Date.now() < deadline - 500) {
      cheap.push((await fetch(`${flood.config.issuer}/jwks`)).status);
      const next = await refresh(flood, gateway, rt);
      cheap.push(next.status);
      rt = next.body.refresh_token as string;
    }
    await Promise.all(load);

    assertFloodAnswers(answers);
    assert.deepEqual([...new Set(cheap)], [200], 'JWKS and refresh keep answering');
    // Most are shed before client authentication or any store round trip.
    assert.ok(events.get('login.shed')?.some((e) => (e as { clientId: unknown }).clientId === null));
    assert.deepEqual(flood.logs.lines.filter((l) => l.includes('"level":50')), []);
    // Shed answers are counted and sampled, not logged one line each.
    const shed = answers.filter((a) => a.status === 503).length;
    assert.ok(shed > 50, `${shed} shed`);
    assert.ok(flood.logs.lines.filter((l) => l.includes('"statusCode":503')).length < shed / 10, 'no request log line per shed login');
  } finally {
    await flood.stop();
  }
});

test('a flood of first calls at /authorize-challenge (they check a password too): every answer is 400 or 503, shed at the door', async () => {
  const flood = await startTestService({ MAX_CONCURRENT_HASHES: '1', ARGON2_MEMORY_KIB: '65536', ARGON2_TIME_COST: '3' });
  try {
    const events = recordEvents(flood);
    const app = await flood.client({ grantTypes: ['refresh_token'], scopes: ['api:read'], firstParty: true });
    const answers: FloodAnswer[] = [];
    const deadline = Date.now() + 3000;
    const load = Array.from({ length: 16 }, async (_, w) => {
      for (let i = 0; Date.now() < deadline; i++) {
        const form = { response_type: 'code', username: `nobody-${w}-${i}@example.com`, password: 'pw', code_challenge: 'A'.repeat(43), code_challenge_method: 'S256' };
        const r = await fetch(`${flood.config.issuer}/authorize-challenge`, {
          method: 'POST',
          headers: { authorization: basic(app.id, app.secret), 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(form),
        });
        answers.push({ status: r.status, body: (await r.json()) as Record<string, unknown>, retryAfter: r.headers.get('retry-after') });
      }
    });
    await Promise.all(load);
    assertFloodAnswers(answers);
    // Shed before client authentication (no client known yet) and without a request log line each.
    assert.ok(events.get('login.shed')?.some((e) => (e as { clientId: unknown }).clientId === null));
    const shed = answers.filter((a) => a.status === 503).length;
    assert.ok(shed > 50, `${shed} shed`);
    assert.ok(flood.logs.lines.filter((l) => l.includes('"statusCode":503')).length < shed / 10, 'no request log line per shed call');
  } finally {
    await flood.stop();
  }
});

// While the gate is full, password grants are answered at the shed door
// (src/http/shed-door.ts), everything else goes on: the shed answer keeps the
// service's headers, a bad body is still the input check's 400, refreshes
// are still answered.
test('shed at the door: the 503 with its headers; bad bodies get 400 and refreshes go on', async () => {
  const gateway = await trustedGateway(svc);
  const u = await svc.user();
  let rt = (await passwordLogin(svc, gateway, u.email, u.password)).body.refresh_token as string;
  let stop = false;
  // Slow logins of unknown users (each hashes, none is throttled) keep both hash slots busy.
  const busy = Array.from({ length: 6 }, async (_, w) => {
    for (let i = 0; !stop; i++) await passwordLogin(svc, gateway, `nobody-${w}-${i}@example.com`, 'pw', { 'x-end-user-ip': `10.50.${w}.${i % 250}` });
  });
  try {
    let shed: Awaited<ReturnType<typeof passwordLogin>> | undefined;
    for (let i = 0; i < 200 && !shed; i++) {
      const r = await passwordLogin(svc, gateway, u.email, u.password, { 'x-end-user-ip': `10.51.0.${i % 250}`, 'x-request-id': 'probe-1' });
      if (r.status === 503) shed = r;
    }
    assert.ok(shed, 'a login was shed');
    assert.deepEqual(shed.body, { error: 'temporarily_unavailable', error_description: 'too many logins in progress, try again shortly' });
    assert.equal(shed.headers.get('retry-after'), '1');
    assert.equal(shed.headers.get('cache-control'), 'no-store');
    assert.equal(shed.headers.get('pragma'), 'no-cache');
    assert.equal(shed.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(shed.headers.get('x-request-id'), 'probe-1');
    assert.match(shed.headers.get('content-type') ?? '', /^application\/json/);

    // A duplicated parameter is the input check's 400, gate full or not.
    const body = `grant_type=password&username=${encodeURIComponent(u.email)}&password=x&password=y`;
    for (let i = 0; i < 20; i++) {
      const dup = await fetch(`${svc.config.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(gateway.id, gateway.secret) },
        body,
      });
      assert.equal(dup.status, 400);
      assert.equal(((await dup.json()) as { error: string }).error, 'invalid_request');
    }
    // Refreshes arriving meanwhile are answered by oidc-provider with their body.
    for (let i = 0; i < 10; i++) {
      const next = await refresh(svc, gateway, rt);
      assert.equal(next.status, 200, next.text);
      rt = next.body.refresh_token as string;
    }
  } finally {
    stop = true;
    await Promise.all(busy);
  }
});
