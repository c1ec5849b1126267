// Prometheus metrics, served on the admin port at /metrics. One Registry per
// service instance (tests run several services in one process, and the
// global default registry would make their metric names collide).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { errors } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type { Db } from '../store/postgres.ts';
import { isDbUnavailable } from '../store/postgres.ts';
import type { SecurityEvents } from '../security/events.ts';
import { RefreshTokenReused, StoreUnavailable } from '../tokens/redis-adapter.ts';

export type Metrics = ReturnType<typeof createMetrics>;

/** `hashesInFlight`: read at scrape time (the login hash gate's counter). */
export function createMetrics(opts: { hashesInFlight?: () => number } = {}) {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    tokenRequests: new Counter({
      name: 'identity_token_requests_total',
      help: 'Token endpoint requests by grant type and outcome (success or the OAuth error code)',
      labelNames: ['grant_type', 'outcome'] as const,
      registers,
    }),
    passwordHashDuration: new Histogram({
      name: 'identity_password_hash_duration_seconds',
      help: 'Time spent in argon2 (or legacy) password hashing, by operation (hash, verify)',
      labelNames: ['operation'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    passwordHashesInFlight: new Gauge({
      name: 'password_hashes_in_flight',
      help: 'Password hash computations running or queued right now',
      registers,
      collect() {
        if (opts.hashesInFlight) this.set(opts.hashesInFlight());
      },
    }),
    passwordHashesShed: new Counter({
      name: 'password_hashes_shed_total',
      help: 'Password hash computations refused because too many were in flight',
      registers,
    }),
    rateLimitBlocks: new Counter({
      name: 'rate_limit_blocks_total',
      help: 'Requests refused by a rate limiter, by limiter',
      labelNames: ['limiter'] as const,
      registers,
    }),
    refreshReuse: new Counter({
      name: 'identity_refresh_token_reuse_total',
      help: 'Refresh tokens presented after they were consumed (the grant is revoked), by who detected it',
      labelNames: ['detected_by'] as const,
      registers,
    }),
    redisErrors: new Counter({
      name: 'identity_redis_errors_total',
      help: 'Redis errors: connection errors and failed commands',
      labelNames: ['kind'] as const,
      registers,
    }),
    postgresErrors: new Counter({
      name: 'identity_postgres_errors_total',
      help: 'Postgres errors: failed readiness checks and requests that could not reach the database',
      labelNames: ['kind'] as const,
      registers,
    }),
  };
}

/** Gauges read from Postgres at scrape time: legacy password hashes and signing key ages. */
export function collectFromDatabase(metrics: Metrics, db: Db): void {
  const registers = [metrics.registry];
  new Gauge({
    name: 'identity_legacy_password_hashes',
    help: 'Users whose stored password hash is not argon2id (upgraded on their next login)',
    registers,
    async collect() {
      try {
        const [row] = await db.$queryRaw<{ n: bigint }[]>`
          SELECT count(*) AS n FROM users WHERE password_hash IS NOT NULL AND password_hash NOT LIKE '$argon2id$%'`;
        this.set(Number(row?.n ?? 0));
      } catch {
        metrics.postgresErrors.inc({ kind: 'scrape' });
      }
    },
  });
  new Gauge({
    name: 'identity_signing_key_age_seconds',
    help: 'Age of each published signing key since it became active (or was created)',
    labelNames: ['kid', 'alg', 'status'] as const,
    registers,
    async collect() {
      try {
        const keys = await db.signingKey.findMany({
          where: { status: { in: ['active', 'next', 'retiring'] } },
          select: { kid: true, alg: true, status: true, createdAt: true, activatedAt: true },
        });
        this.reset();
        for (const k of keys) {
          const since = (k.activatedAt ?? k.createdAt).getTime();
          this.set({ kid: k.kid, alg: k.alg, status: k.status }, Math.max(0, (Date.now() - since) / 1000));
        }
      } catch {
        metrics.postgresErrors.inc({ kind: 'scrape' });
      }
    },
  });
}

type Ctx = { oidc?: { route?: string; params?: { grant_type?: unknown } } };

const grantTypeOf = (ctx: Ctx) => {
  const g = ctx.oidc?.params?.grant_type;
  return typeof g === 'string' && /^[\w:.-]{1,64}$/.test(g) ? g : 'unknown';
};

/** Counts token requests and refresh-token reuse from oidc-provider's events. */
export function instrumentProvider(provider: Provider, metrics: Metrics): void {
  provider.on('grant.success', (ctx: Ctx) => {
    metrics.tokenRequests.inc({ grant_type: grantTypeOf(ctx), outcome: 'success' });
  });
  provider.on('grant.error', (ctx: Ctx, err: errors.OIDCProviderError) => {
    metrics.tokenRequests.inc({ grant_type: grantTypeOf(ctx), outcome: err.error ?? 'unknown' });
    if (err instanceof RefreshTokenReused) metrics.refreshReuse.inc({ detected_by: 'adapter' });
    // oidc-provider's own check, when it finds the token already consumed.
    else if (err instanceof errors.InvalidGrant && err.error_detail === 'refresh token already used') {
      metrics.refreshReuse.inc({ detected_by: 'provider' });
    }
    if (err instanceof StoreUnavailable) metrics.redisErrors.inc({ kind: 'command' });
  });
  provider.on('server_error', (ctx: Ctx, err: unknown) => {
    if (ctx.oidc?.route === 'token') metrics.tokenRequests.inc({ grant_type: grantTypeOf(ctx), outcome: 'server_error' });
    if (isDbUnavailable(err)) metrics.postgresErrors.inc({ kind: 'request' });
  });
}

/** Rate-limit blocks and shed logins, from the security events (src/security/events.ts). */
export function countSecurityEvents(events: SecurityEvents, metrics: Metrics): void {
  events.on('login.throttled', ({ scope }) => metrics.rateLimitBlocks.inc({ limiter: scope }));
  events.on('login.rate_limited', () => metrics.rateLimitBlocks.inc({ limiter: 'ip' }));
  events.on('login.shed', () => metrics.passwordHashesShed.inc());
}
