// Prometheus metrics, served on the admin port at /metrics. One Registry per
// service instance (tests run several services in one process, and the
// global default registry would make their metric names collide). The
// definitions live here; each layer increments what it observes, and the
// gauges read their values at scrape time through the callbacks given.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type Metrics = ReturnType<typeof createMetrics>;

export type ScrapeSources = {
  /** Password hashes in flight (the hash gate's counter). */
  hashesInFlight?: () => number;
  /** Users whose hash is not argon2id; throws when Postgres is down. */
  legacyHashes?: () => Promise<number>;
  /** Published signing keys with the time they started (activated or created). */
  signingKeys?: () => Promise<{ kid: string; alg: string; status: string; since: Date }[]>;
};

export function createMetrics(sources: ScrapeSources = {}) {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });
  const postgresErrors = new Counter({
    name: 'identity_postgres_errors_total',
    help: 'Postgres errors: failed readiness checks, requests and scrapes that could not reach the database',
    labelNames: ['kind'] as const,
    registers,
  });
  const scrape = async (read: () => Promise<void>) => {
    try {
      await read();
    } catch {
      postgresErrors.inc({ kind: 'scrape' });
    }
  };
  return {
    registry,
    tokenRequests: new Counter({
      name: 'identity_token_requests_total',
      help: 'Token endpoint requests by grant type and outcome (success or the OAuth error code)',
      labelNames: ['grant_type', 'outcome'] as const,
      registers,
    }),
    loginAttempts: new Counter({
      name: 'identity_login_attempts_total',
      help: 'Password and second-factor checks by door (token, password_change, mfa) and outcome; succeeded + failed were verified, a throttled password check spent a dummy hash',
      labelNames: ['via', 'outcome'] as const,
      registers,
    }),
    clientAuthFailures: new Counter({
      name: 'identity_client_auth_failures_total',
      help: 'Failed client authentications (wrong secret, unknown client) at the token, introspection and revocation endpoints',
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
        if (sources.hashesInFlight) this.set(sources.hashesInFlight());
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
      help: 'Refresh tokens presented after they were consumed (the grant is revoked), by how it was detected',
      labelNames: ['detected_by'] as const,
      registers,
    }),
    redisErrors: new Counter({
      name: 'identity_redis_errors_total',
      help: 'Redis errors: connection errors, failed commands and readiness checks',
      labelNames: ['kind'] as const,
      registers,
    }),
    postgresErrors,
    keySyncFailures: new Counter({
      name: 'identity_key_sync_failures_total',
      help: 'Failed checks of the signing keys table by this replica (it stops signing after KEY_SYNC_MAX_MISSED in a row)',
      registers,
    }),
    legacyIdpChecks: new Counter({
      name: 'identity_legacy_idp_checks_total',
      help: 'Trickle migration: logins of unknown users checked against the legacy identity provider, by outcome (migrated, invalid, unavailable, circuit_open)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    legacyHashes: new Gauge({
      name: 'identity_legacy_password_hashes',
      help: 'Users whose stored password hash is not argon2id (upgraded on their next login)',
      registers,
      async collect() {
        const read = sources.legacyHashes;
        if (read) await scrape(async () => this.set(await read()));
      },
    }),
    signingKeyAge: new Gauge({
      name: 'identity_signing_key_age_seconds',
      help: 'Age of each published signing key since it became active (or was created)',
      labelNames: ['kid', 'alg', 'status'] as const,
      registers,
      async collect() {
        const read = sources.signingKeys;
        if (!read) return;
        await scrape(async () => {
          const keys = await read();
          this.reset();
          for (const k of keys) this.set({ kid: k.kid, alg: k.alg, status: k.status }, Math.max(0, (Date.now() - k.since.getTime()) / 1000));
        });
      },
    }),
  };
}

/** Counts a store failure with the store's own label (503s, never 500s). */
export function countStoreError(metrics: Metrics, store: 'postgres' | 'redis'): void {
  if (store === 'postgres') metrics.postgresErrors.inc({ kind: 'request' });
  else metrics.redisErrors.inc({ kind: 'command' });
}
