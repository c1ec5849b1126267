// The error catalogue and the mappings into it: what clients see for each
// kind of failure, and which failures count as a store outage.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CATALOGUE, ERROR_CODES, ServiceError, StoreUnavailable } from '../../src/errors.ts';
import { Prisma } from '../../src/generated/prisma/client.ts';
import { bearerChallenge, toServiceError } from '../../src/http/errors.ts';
import { isPostgresUnavailable } from '../../src/store/postgres.ts';
import { redisCall } from '../../src/store/redis.ts';
import { CatalogueError } from '../../src/tokens/oidc.ts';
import { refreshTokenTtl } from '../../src/tokens/provider.ts';

test('every code has an HTTP status and an RFC 6749 code; 429 and 503 carry Retry-After', () => {
  for (const code of ERROR_CODES) {
    assert.ok(CATALOGUE[code].status >= 400 && CATALOGUE[code].status < 600, code);
    assert.match(CATALOGUE[code].oauth, /^[a-z_]+$/, code);
  }
  assert.equal(new ServiceError('temporarily_unavailable', 'x').retryAfter, 1);
  assert.equal(new ServiceError('rate_limited', 'x', { retryAfter: 7 }).retryAfter, 7);
  assert.equal(new ServiceError('not_found', 'x').retryAfter, undefined);
  assert.deepEqual(new ServiceError('validation_failed', 'email: bad', { field: 'email' }).toJSON(), {
    error: 'validation_failed',
    error_description: 'email: bad',
    field: 'email',
  });
});

test('body-parser and express client errors map to 4xx codes; anything else is a 500', () => {
  const bodyError = (type: string, status: number) => Object.assign(new Error(type), { type, status, expose: true });
  const cases: [unknown, string, number][] = [
    [bodyError('entity.too.large', 413), 'payload_too_large', 413],
    [bodyError('entity.parse.failed', 400), 'validation_failed', 400],
    [bodyError('charset.unsupported', 415), 'unsupported_media_type', 415],
    [bodyError('encoding.unsupported', 415), 'unsupported_media_type', 415],
    [Object.assign(new Error('incorrect header check'), { status: 400, expose: true }), 'invalid_request', 400],
    [new TypeError('x is not a function'), 'server_error', 500],
    [Object.assign(new Error('hidden'), { status: 400, expose: false }), 'server_error', 500],
    ['a string', 'server_error', 500],
  ];
  for (const [err, code, status] of cases) {
    const out = toServiceError(err);
    assert.equal(out.code, code, String((err as Error).message ?? err));
    assert.equal(out.status, status);
  }
  assert.equal(toServiceError(new StoreUnavailable('redis', new Error('closed'))).status, 503);
});

test('RFC 6750 challenges: bare for no token, with the error otherwise, none for other codes', () => {
  assert.equal(bearerChallenge('unauthorized', 'x'), 'Bearer');
  assert.equal(bearerChallenge('invalid_token', 'the "token" expired'), 'Bearer error="invalid_token", error_description="the token expired"');
  assert.equal(bearerChallenge('insufficient_scope', 'no'), 'Bearer error="insufficient_scope", error_description="no"');
  assert.equal(bearerChallenge('not_found', 'x'), undefined);
});

test('Postgres: connection failures are outages; data errors and bugs are not', () => {
  const known = (code: string, cause?: object) =>
    new Prisma.PrismaClientKnownRequestError('x', { code, clientVersion: '7', meta: cause ? { driverAdapterError: { cause } } : {} });
  assert.ok(isPostgresUnavailable(known('P1001')), "can't reach the server");
  assert.ok(isPostgresUnavailable(known('P2024')), 'pool timeout');
  assert.ok(isPostgresUnavailable(known('P2010', { kind: 'DatabaseNotReachable' })));
  assert.ok(isPostgresUnavailable(known('P2010', { kind: 'postgres', originalCode: '57P01' })), 'admin shutdown');
  assert.ok(isPostgresUnavailable(known('P2021', { kind: 'TableDoesNotExist' })), 'schema not migrated');
  assert.ok(isPostgresUnavailable(new Error('Connection terminated unexpectedly')), "the driver's own errors");
  assert.ok(!isPostgresUnavailable(known('P2002', { kind: 'UniqueConstraintViolation' })), 'a duplicate');
  assert.ok(!isPostgresUnavailable(known('P2025')), 'no such row');
  assert.ok(!isPostgresUnavailable(known('P2010', { kind: 'postgres', originalCode: '42601' })), 'a syntax error is a bug');
  assert.ok(!isPostgresUnavailable(new Prisma.PrismaClientValidationError('bad args', { clientVersion: '7' })), 'a bad query is a bug');
  assert.ok(!isPostgresUnavailable(new TypeError('bug')));
  assert.ok(!isPostgresUnavailable(new ServiceError('conflict', 'x')));
});

test('Redis: command failures are outages labelled redis; bugs and our own errors pass through', async () => {
  const outage = await redisCall(() => Promise.reject(new Error('Connection is closed.'))).catch((e: unknown) => e);
  assert.ok(outage instanceof StoreUnavailable && outage.store === 'redis');
  const readonly = Object.assign(new Error('READONLY You can\'t write against a read only replica.'), { name: 'ReplyError' });
  assert.ok((await redisCall(() => Promise.reject(readonly)).catch((e: unknown) => e)) instanceof StoreUnavailable);
  const bug = Object.assign(new Error('ERR wrong number of arguments'), { name: 'ReplyError' });
  assert.equal(await redisCall(() => Promise.reject(bug)).catch((e: unknown) => e), bug);
  const typeError = new TypeError('x');
  assert.equal(await redisCall(() => Promise.reject(typeError)).catch((e: unknown) => e), typeError);
  const ours = new ServiceError('rate_limited', 'x');
  assert.equal(await redisCall(() => Promise.reject(ours)).catch((e: unknown) => e), ours);
});

test('on OAuth endpoints a catalogue error keeps its status, gets the RFC 6749 code and our description', () => {
  const down = new CatalogueError(new StoreUnavailable('postgres', new Error('x')));
  assert.deepEqual([down.statusCode, down.error, down.expose, down.store], [503, 'temporarily_unavailable', true, 'postgres']);
  const limited = new CatalogueError(new ServiceError('rate_limited', 'too many', { retryAfter: 3 }));
  assert.deepEqual([limited.statusCode, limited.error, limited.error_description], [429, 'temporarily_unavailable', 'too many']);
  assert.equal(new CatalogueError(new ServiceError('server_error', 'secret detail')).expose, false, 'bugs are not described');
});

test('a refresh token lives the idle lifetime, never past the family absolute end, at least a second', () => {
  const ttl = { refreshTokenIdleTtl: 100, refreshTokenAbsoluteTtl: 1000 };
  assert.equal(refreshTokenTtl(ttl, 0, 0), 100);
  assert.equal(refreshTokenTtl(ttl, 0, 950), 50);
  assert.equal(refreshTokenTtl(ttl, 0, 2000), 1);
});
