// Composition root: opens the stores, loads the signing key, builds the
// provider and the two HTTP apps, and knows how to shut all of it down.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Configuration } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { PasswordHasher } from './accounts/passwords.ts';
import { memorySessions, redisSessions } from './accounts/sessions.ts';
import { findActiveAccount } from './accounts/users.ts';
import { createAccountsModule, type AccountsModule } from './admin/module.ts';
import type { Config } from './config/index.ts';
import { createAdminApp } from './http/admin-app.ts';
import { collectFromDatabase, countSecurityEvents, createMetrics, instrumentProvider, type Metrics } from './http/metrics.ts';
import { drainable } from './http/shutdown.ts';
import { createPublicApp, publicListener } from './http/public-app.ts';
import { keyPolicy } from './keys/lifecycle.ts';
import { KeyRotation } from './keys/rotation.ts';
import type { Logger } from './log.ts';
import { HashGate } from './security/hash-gate.ts';
import { createSecurityEvents, guardedAuthentication, hardenProvider, type SecurityEvents } from './security/index.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './store/embedded.ts';
import { migrate } from './store/migrate.ts';
import { createDb, type Db } from './store/postgres.ts';
import { createRedis, type RedisClient } from './store/redis.ts';
import { ClientAdapter } from './tokens/clients.ts';
import { createProvider } from './tokens/provider.ts';
import { guard, RedisTokenStore } from './tokens/redis-adapter.ts';

export type Stores = {
  db: Db;
  databaseUrl: string;
  embedded: EmbeddedPostgres | undefined;
  redis: RedisClient | undefined;
  kek: Buffer;
  close(): Promise<void>;
};

/** Postgres (or the embedded PGlite), Redis if configured, and the KEK. */
export async function openStores(config: Config, logger: Logger, metrics?: Metrics): Promise<Stores> {
  let embedded: EmbeddedPostgres | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres(config.dataDir);
    databaseUrl = embedded.url;
    await migrate(databaseUrl);
  }
  const db = createDb(databaseUrl, embedded ? 1 : config.databasePoolMax);
  let redis: RedisClient | undefined;
  if (config.redisTopology) {
    redis = createRedis(config.redisTopology, config.redisCommandTimeoutMs);
    redis.on('error', (err) => {
      metrics?.redisErrors.inc({ kind: 'connection' });
      logger.warn({ err: { message: err.message } }, 'redis error');
    });
    await redis.connect();
  }
  const kek = config.keyEncryptionKey ?? (await developmentKek(config.dataDir, logger));
  return {
    db,
    databaseUrl,
    embedded,
    redis,
    kek,
    async close() {
      redis?.disconnect();
      await db.$disconnect();
      await embedded?.stop();
    },
  };
}

// Development only (production requires KEY_ENCRYPTION_KEY): a KEK generated
// once and kept beside the embedded database.
async function developmentKek(dataDir: string, logger: Logger): Promise<Buffer> {
  const file = join(dataDir, 'dev-key-encryption-key');
  const existing = await readFile(file, 'utf8').catch(() => '');
  if (existing) return Buffer.from(existing.trim(), 'base64');
  await mkdir(dataDir, { recursive: true });
  const kek = randomBytes(32);
  await writeFile(file, kek.toString('base64'), { mode: 0o600 });
  logger.warn({ file }, 'KEY_ENCRYPTION_KEY is not set: generated a development key-encryption key');
  return kek;
}

export type RunningService = {
  publicUrl: string;
  adminUrl: string;
  /** The provider signing right now (replaced on every key change). */
  readonly provider: Provider;
  keys: KeyRotation;
  stores: Stores;
  tokenStore: RedisTokenStore | undefined;
  metrics: Metrics;
  /** Readiness turns 503 at once; requests are served SHUTDOWN_DELAY_MS more, then everything closes. */
  /** Security events (logins, throttling, refresh reuse): subscribe for audit and metrics. */
  events: SecurityEvents;
  accounts: AccountsModule;
  close(): Promise<void>;
};

export async function startService(config: Config, logger: Logger): Promise<RunningService> {
  const development = !config.databaseUrl || !config.redisTopology;
  if (development) {
    logger.warn(
      '*** DEVELOPMENT MODE: ' +
        [
          !config.databaseUrl && `embedded PGlite database under ${config.dataDir} (DATABASE_URL not set)`,
          !config.redisTopology && 'in-memory token store, lost on restart, one process only (REDIS_URL not set)',
        ]
          .filter(Boolean)
          .join('; ') +
        '. Do not use this for real users. ***',
    );
  }
  const gate = new HashGate(config.abuse.maxConcurrentHashes);
  const metrics = createMetrics({ hashesInFlight: () => gate.inFlight });
  const stores = await openStores(config, logger, metrics);
  const { db } = stores;
  collectFromDatabase(metrics, db);
  const events = createSecurityEvents(logger);
  countSecurityEvents(events, metrics);
  const tokenStore = stores.redis
    ? new RedisTokenStore(stores.redis, config.redisKeyPrefix, {
        wait: { replicas: config.redisWaitReplicas, timeoutMs: Math.floor(config.redisCommandTimeoutMs / 2) },
        events,
        graceSeconds: config.abuse.refreshReuseGraceSeconds,
      })
    : undefined;
  // Development without Redis: oidc-provider's memory store, with an index so
  // that a user's sessions can still be revoked at once.
  const memory = tokenStore ? undefined : memorySessions((await loadMemoryAdapter()) as never);
  const clients = new ClientAdapter(db);
  // Postgres unreachable while authenticating a client: 503, never a 500.
  const clientStore = { find: (id: string) => guard(() => clients.find(id)), upsert: () => clients.upsert(), destroy: () => clients.destroy() };
  const hasher = new PasswordHasher(config.argon2, (operation, seconds) =>
    metrics.passwordHashDuration.observe({ operation }, seconds),
  );
  const accounts = createAccountsModule({ config, db, hasher, sessions: memory ?? redisSessions(tokenStore!), logger });
  await accounts.bootstrap().catch(async (err: unknown) => {
    await stores.close();
    throw err;
  });
  // Built once: throttling state and the hash gate outlive provider rebuilds.
  const guardedAuthenticate = guardedAuthentication({
    config,
    events,
    redis: stores.redis,
    hasher,
    gate,
    // Audited (src/admin/module.ts): success and failure with reason, never the password.
    authenticate: accounts.authenticate,
  });

  // A new provider is built whenever the signing key changes (src/keys/rotation.ts):
  // attach provider listeners here, not to one instance.
  const keys = new KeyRotation({
    db,
    kek: stores.kek,
    policy: keyPolicy(config),
    syncInterval: config.keySyncInterval,
    jwksMaxAge: config.jwksMaxAge,
    logger,
    buildProvider(signingKey) {
      const provider = createProvider({
        config,
        signingKeys: [signingKey],
        adapter: ((model: string) =>
          model === 'Client' ? clientStore : tokenStore ? tokenStore.adapterFor(model) : memory!.adapterFor(model)) as never,
        authenticate: guardedAuthenticate,
        // Refresh re-reads the user (a disabled user cannot refresh): Postgres
        // down means 503 for refresh too, never a token for a stale account.
        findAccount: (id) => guard(() => findActiveAccount(db, id)),
      });
      hardenProvider(provider, config, tokenStore);
      provider.on('server_error', (_ctx, err) => logger.error({ err }, 'oidc-provider server_error'));
      instrumentProvider(provider, metrics);
      provider.on('grant.error', accounts.onGrantError);
      return provider;
    },
  });
  await keys.start();
  let draining = false;

  const readiness = async () => {
    const [postgres, redis] = await Promise.all([
      db.$queryRaw`SELECT 1`.then(() => true, () => false),
      stores.redis ? stores.redis.ping().then(() => true, () => false) : Promise.resolve(true),
    ]);
    if (!postgres) metrics.postgresErrors.inc({ kind: 'readiness' });
    if (!redis) metrics.redisErrors.inc({ kind: 'readiness' });
    return { postgres, redis, signingKey: keys.activeKid !== '', notDraining: !draining };
  };

  const publicApp = createPublicApp(keys, logger, keys.jwks(), {
    trustProxyHops: config.trustProxyHops,
    maxBodyBytes: config.http.maxBodyBytes,
    corsOrigins: config.corsOrigins,
    accountRoutes: accounts.selfServiceRouter,
  });
  const publicServer = createServer(
    { maxHeaderSize: config.http.maxHeaderBytes },
    publicListener(publicApp, keys.jwks(), config.corsOrigins),
  ).listen(config.port, config.host);
  const adminServer = createAdminApp(readiness, { logger, registry: metrics.registry, api: accounts.adminRouter }).listen(config.adminPort, config.host);
  const [publicDrain, adminDrain] = [drainable(publicServer), drainable(adminServer)];
  await Promise.all([once(publicServer, 'listening'), once(adminServer, 'listening')]);
  const url = (s: Server) => `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${(s.address() as AddressInfo).port}`;
  logger.info({ public: url(publicServer), admin: url(adminServer), issuer: config.issuer }, 'identity service listening');

  return {
    publicUrl: url(publicServer),
    adminUrl: url(adminServer),
    get provider() {
      return keys.provider;
    },
    keys,
    stores,
    tokenStore,
    metrics,
    events,
    accounts,
    async close() {
      keys.stop();
      draining = true;
      publicDrain.startDraining();
      adminDrain.startDraining();
      if (config.shutdownDelayMs) await new Promise((r) => setTimeout(r, config.shutdownDelayMs));
      // The admin port closes last: probes keep seeing 503 while requests finish.
      await publicDrain.close();
      await adminDrain.close();
      await stores.close();
    },
  };
}

// oidc-provider's own in-memory adapter, for development without Redis.
async function loadMemoryAdapter(): Promise<new (model: string) => NonNullable<Configuration['adapter']>> {
  const mod = (await import('oidc-provider/lib/adapters/memory_adapter.js' as string)) as {
    default: new (model: string) => NonNullable<Configuration['adapter']>;
  };
  return mod.default;
}
