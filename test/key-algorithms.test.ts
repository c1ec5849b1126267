// Keys cannot fight: replicas whose SIGNING_ALG disagree create no keys and
// all sign with the one active key; `identity keys set-alg` moves signing to
// another algorithm through the full pre-publication window, so a verifier
// that caches the JWKS for JWKS_MAX_AGE never fails one token; a replica that
// cannot keep its keys in sync stops signing and turns unready.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { decodeProtectedHeader } from 'jose';
import { loadConfig } from '../src/config/index.ts';
import { createLogger } from '../src/observability/log.ts';
import { domainServices, openStores } from '../src/service.ts';
import { freshDatabase, startTestService, type TestService } from './support/service.ts';
import { databaseBehindProxy } from './support/tcp-proxy.ts';
import { call, eventually, passwordToken, startExample, type Example } from './support/verify.ts';
import { sleep } from './support/security.ts';

const run = promisify(execFile);
// The issue asks for 60 s of disagreement; shorter locally with TEST_KEY_FIGHT_SECONDS.
const FIGHT_SECONDS = Number(process.env.TEST_KEY_FIGHT_SECONDS ?? 60);

describe('two replicas with different SIGNING_ALG', () => {
  let database: Awaited<ReturnType<typeof freshDatabase>>;
  let es: TestService;
  let ed: TestService;
  let example: Example;
  const kek = randomBytes(32).toString('base64');
  const windows = { JWKS_MAX_AGE: '3', KEY_SYNC_INTERVAL: '1', KEY_ROTATION_INTERVAL: '0', KEY_ENCRYPTION_KEY: kek };

  before(async () => {
    database = await freshDatabase();
    es = await startTestService({ ...windows, SIGNING_ALG: 'ES256' }, { databaseUrl: database.url });
    // Replicas of one service: one issuer, one database, one Redis prefix.
    ed = await startTestService(
      { ...windows, SIGNING_ALG: 'EdDSA', ISSUER: es.config.issuer, REDIS_KEY_PREFIX: es.config.redisKeyPrefix },
      { databaseUrl: database.url },
    );
    // A verifier that refetches the JWKS only when its copy is JWKS_MAX_AGE old (cooldown = max age: no early refetch on an unknown kid).
    example = await startExample({ issuer: es.config.issuer, audience: es.config.audience, cacheMaxAge: 3000, cooldownDuration: 3000 });
  });
  after(async () => {
    await example.close();
    await ed.stop();
    await es.stop();
    await database.drop();
  });

  test(`${FIGHT_SECONDS} s of disagreement create no keys; set-alg moves to EdDSA with no verification failure`, async () => {
    const client = await es.client();
    const user = await es.user();
    const tokens = () => Promise.all([es, ed].map((s) => passwordToken(`${s.publicUrl}/token`, client, user)));
    const keyRows = () => es.stores.db.signingKey.findMany({ orderBy: { createdAt: 'asc' } });
    const failures: string[] = [];
    let verified = 0;
    const verify = async () => {
      for (const t of await tokens()) {
        const res = await call(`${example.url}/me`, t);
        verified++;
        if (res.status !== 200) failures.push(`${res.status} ${res.challenge} (${decodeProtectedHeader(t).alg})`);
      }
    };

    const [first] = await keyRows();
    assert.equal(first!.alg, 'ES256');
    const fightEnds = Date.now() + FIGHT_SECONDS * 1000;
    while (Date.now() < fightEnds) {
      await verify();
      assert.deepEqual((await keyRows()).map((k) => `${k.kid}:${k.status}`), [`${first!.kid}:active`], 'no key created');
      await sleep(500);
    }
    for (const t of await tokens()) assert.equal(decodeProtectedHeader(t).alg, 'ES256');
    assert.equal((await fetch(`${ed.adminUrl}/readyz`)).status, 200, 'the disagreeing replica is ready');
    assert.ok(ed.logs.lines.some((l) => l.includes('SIGNING_ALG differs from the active key')), 'and it warned');

    const env = { ...process.env, DATABASE_URL: database.url, REDIS_URL: '', ...windows };
    const setAt = Date.now();
    const { stdout } = await run(process.execPath, ['src/cli.ts', 'keys', 'set-alg', 'EdDSA'], { env });
    const next = JSON.parse(stdout) as { kid: string; alg: string; status: string };
    assert.deepEqual([next.alg, next.status], ['EdDSA', 'next']);

    // Both replicas keep signing ES256 for the whole pre-publication window, then EdDSA.
    let switchedAt = 0;
    await eventually(
      async () => {
        await verify();
        const algs = (await tokens()).map((t) => decodeProtectedHeader(t).alg);
        if (algs.includes('EdDSA')) switchedAt ||= Date.now();
        return algs.every((a) => a === 'EdDSA');
      },
      30_000,
      'both replicas to sign with EdDSA',
    );
    // Keep verifying for one more cache lifetime.
    const tail = Date.now() + 3500;
    while (Date.now() < tail) await verify();

    assert.deepEqual(failures, [], `${failures.length} of ${verified} verifications failed`);
    assert.ok(switchedAt - setAt >= (3 + 1) * 1000 - 500, `EdDSA signed ${switchedAt - setAt} ms after set-alg, before its window`);
    const rows = await keyRows();
    assert.deepEqual(
      rows.map((r) => [r.alg, r.status]),
      [
        ['ES256', 'retiring'],
        ['EdDSA', 'active'],
      ],
    );
    const audit = await es.stores.db.auditEvent.findMany({ where: { type: 'key.algorithm_set' } });
    assert.equal(audit.length, 1);
    assert.equal(audit[0]!.actor, 'cli');
    console.log(`set-alg: EdDSA signed after ${switchedAt - setAt} ms; ${verified} verifications, ${failures.length} failed`);
  });
});

describe('a replica that cannot keep its keys in sync', () => {
  test('its signing key no longer active and the new one out of reach: /token 503, /readyz 503, sync failures counted', async () => {
    const database = await freshDatabase();
    const [kek1, kek2] = [randomBytes(32).toString('base64'), randomBytes(32).toString('base64')];
    const svc = await startTestService({ KEY_ENCRYPTION_KEY: kek1, KEY_SYNC_INTERVAL: '1', KEY_ROTATION_INTERVAL: '0' }, { databaseUrl: database.url });
    try {
      const client = await svc.client();
      const user = await svc.user();
      await passwordToken(`${svc.config.issuer}/token`, client, user);
      // Another process re-seals the keys under a new KEK and revokes the
      // signing key: this replica (still on the old KEK) cannot load the successor.
      const config = loadConfig({ DATABASE_URL: database.url, KEY_ENCRYPTION_KEY: kek2, OLD_KEY_ENCRYPTION_KEY: kek1 });
      const logger = createLogger('silent');
      const stores = await openStores(config, logger);
      try {
        const { keys } = domainServices(config, stores, logger, { purgeAccount: async () => 0, purgeClient: async () => 0 });
        await keys.rekey(config.oldKeyEncryptionKey!, { actor: 'test' });
        await keys.revoke(svc.keys.activeKid, { actor: 'test' });
      } finally {
        await stores.close();
      }
      const ready = await eventually(
        async () => {
          const res = await fetch(`${svc.adminUrl}/readyz`);
          const body = (await res.json()) as { checks: Record<string, boolean> };
          return res.status === 503 && body;
        },
        10_000,
        'readiness to fail',
      );
      assert.deepEqual(ready.checks, { postgres: true, redis: true, signingKey: false, notDraining: true });
      await assert.rejects(passwordToken(`${svc.config.issuer}/token`, client, user), /token request failed: 503 .*temporarily_unavailable/);
      const metrics = await (await fetch(`${svc.adminUrl}/metrics`)).text();
      assert.ok(Number(/^identity_key_sync_failures_total (\d+)/m.exec(metrics)?.[1]) >= 1, 'sync failures counted');
    } finally {
      await svc.stop();
      await database.drop();
    }
  });

  test(`no sync for KEY_SYNC_MAX_MISSED intervals: not ready to sign; back in sync: signs again`, async () => {
    const db = await databaseBehindProxy();
    const svc = await startTestService({ KEY_SYNC_INTERVAL: '1', KEY_SYNC_MAX_MISSED: '2' }, { databaseUrl: db.url });
    try {
      await db.proxy.down();
      const stale = await eventually(
        async () => {
          const body = (await (await fetch(`${svc.adminUrl}/readyz`)).json()) as { checks: Record<string, boolean> };
          return body.checks.signingKey === false && body;
        },
        10_000,
        'the signing key check to fail',
      );
      assert.equal(stale.checks.signingKey, false);
      await db.proxy.up();
      await eventually(async () => (await fetch(`${svc.adminUrl}/readyz`)).status === 200, 15_000, 'readiness to return');
      const client = await svc.client();
      const user = await svc.user();
      assert.ok(await passwordToken(`${svc.config.issuer}/token`, client, user));
    } finally {
      await svc.stop();
      await db.drop();
    }
  });
});
