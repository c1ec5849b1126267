import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/index.ts';

const kek = Buffer.alloc(32, 7).toString('base64');
const production = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgresql://db/identity',
  REDIS_URL: 'redis://redis:6379',
  KEY_ENCRYPTION_KEY: kek,
  ISSUER: 'https://id.example.com',
};

test('defaults are the documented ones, and the result is frozen', () => {
  const c = loadConfig({});
  assert.equal(c.signingAlg, 'ES256');
  assert.equal(c.accessTokenTtl, 900);
  assert.deepEqual(c.argon2, { memoryCost: 19456, timeCost: 2, parallelism: 1 });
  assert.equal(c.issuer, 'http://localhost:3000');
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.argon2));
});

test('production requires DATABASE_URL, REDIS_URL, KEY_ENCRYPTION_KEY and ISSUER, naming each', () => {
  assert.doesNotThrow(() => loadConfig(production));
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'KEY_ENCRYPTION_KEY', 'ISSUER'] as const) {
    const env: Record<string, string> = { ...production };
    delete env[name];
    assert.throws(() => loadConfig(env), (err: Error) => err.message.includes(`${name}: is required`));
  }
});

test('RS256 is refused with the reason; EdDSA and PS256 are accepted', () => {
  assert.throws(() => loadConfig({ SIGNING_ALG: 'RS256' }), /RS256 is not allowed/);
  assert.throws(() => loadConfig({ SIGNING_ALG: 'HS256' }), /SIGNING_ALG/);
  assert.equal(loadConfig({ SIGNING_ALG: 'EdDSA' }).signingAlg, 'EdDSA');
  assert.equal(loadConfig({ SIGNING_ALG: 'PS256' }).signingAlg, 'PS256');
});

test('bad values are rejected at boot with the variable named', () => {
  assert.throws(() => loadConfig({ ACCESS_TOKEN_TTL: 'soon' }), /ACCESS_TOKEN_TTL/);
  assert.throws(() => loadConfig({ KEY_ENCRYPTION_KEY: 'c2hvcnQ=' }), /KEY_ENCRYPTION_KEY: must be 32 bytes/);
  assert.throws(() => loadConfig({ REFRESH_TOKEN_IDLE_TTL: '100', REFRESH_TOKEN_ABSOLUTE_TTL: '50' }), /REFRESH_TOKEN_IDLE_TTL/);
  assert.throws(() => loadConfig({ ARGON2_MEMORY_KIB: '8192', ARGON2_TIME_COST: '1' }), /OWASP minimum/);
  assert.doesNotThrow(() => loadConfig({ ARGON2_MEMORY_KIB: '7168', ARGON2_TIME_COST: '5' }));
  assert.throws(() => loadConfig({ DATABASE_URL: 'not a url' }), /DATABASE_URL/);
  assert.throws(() => loadConfig({ SCOPES: 'ok "quoted"' }), /SCOPES/);
});

test('key rotation settings: documented defaults, and a rotation interval shorter than the pre-publication window is refused', () => {
  const c = loadConfig({});
  assert.equal(c.keyRotationInterval, 30 * 86_400);
  assert.equal(c.jwksMaxAge, 600);
  assert.equal(c.keySyncInterval, 5);
  assert.equal(loadConfig({ KEY_ROTATION_INTERVAL: '0' }).keyRotationInterval, 0);
  assert.throws(() => loadConfig({ KEY_ROTATION_INTERVAL: '300', JWKS_MAX_AGE: '600' }), /KEY_ROTATION_INTERVAL: must exceed/);
  assert.throws(() => loadConfig({ KEY_SYNC_INTERVAL: '0' }), /KEY_SYNC_INTERVAL/);
  assert.throws(() => loadConfig({ OLD_KEY_ENCRYPTION_KEY: 'c2hvcnQ=' }), /OLD_KEY_ENCRYPTION_KEY: must be 32 bytes/);
});

test('Redis topology: one node, Sentinel or Cluster, exactly one of them', () => {
  assert.deepEqual(loadConfig({ REDIS_URL: 'redis://r:6379' }).redisTopology, { kind: 'single', url: 'redis://r:6379' });
  assert.equal(loadConfig({}).redisTopology, undefined);
  const sentinel = loadConfig({
    REDIS_SENTINELS: 's1:26379, s2:26379,[::1]:26380',
    REDIS_SENTINEL_NAME: 'mymaster',
    REDIS_PASSWORD: 'p',
  }).redisTopology;
  assert.deepEqual(sentinel, {
    kind: 'sentinel',
    sentinels: [
      { host: 's1', port: 26379 },
      { host: 's2', port: 26379 },
      { host: '::1', port: 26380 },
    ],
    name: 'mymaster',
    password: 'p',
    sentinelPassword: undefined,
  });
  assert.deepEqual(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000 10.0.0.2:7000' }).redisTopology, {
    kind: 'cluster',
    nodes: [
      { host: '10.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7000 },
    ],
    password: undefined,
  });
  assert.throws(() => loadConfig({ REDIS_URL: 'redis://r', REDIS_CLUSTER_NODES: 'n:7000' }), /set only one of REDIS_URL, REDIS_CLUSTER_NODES/);
  assert.throws(() => loadConfig({ REDIS_SENTINELS: 's1:26379' }), /REDIS_SENTINEL_NAME: is required/);
  assert.throws(() => loadConfig({ REDIS_CLUSTER_NODES: 'n1' }), /REDIS_CLUSTER_NODES.*host:port/);
  assert.throws(() => loadConfig({ REDIS_CLUSTER_NODES: 'n1:70000' }), /REDIS_CLUSTER_NODES.*port/);
  assert.throws(() => loadConfig({ REDIS_KEY_PREFIX: 'idp:{x}:' }), /REDIS_KEY_PREFIX/);
  assert.throws(() => loadConfig({ REDIS_WAIT_REPLICAS: '-1' }), /REDIS_WAIT_REPLICAS/);
  const { REDIS_URL: _, ...withoutUrl } = production;
  assert.doesNotThrow(() => loadConfig({ ...withoutUrl, REDIS_CLUSTER_NODES: 'n1:7000' }));
  assert.doesNotThrow(() => loadConfig({ ...withoutUrl, REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm' }));
});
