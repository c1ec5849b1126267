// Composition root: opens the stores, loads the signing key, builds the
// provider and the two HTTP apps, and knows how to shut all of it down.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Configuration } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { PasswordHasher } from './accounts/passwords.ts';
import { memorySessions, redisSessions } from './accounts/sessions.ts';
import { findActiveAccount } from './accounts/users.ts';
import { createAccountsModule, type AccountsModule } from './admin/module.ts';
import type { Config } from './config/index.ts';
import { createAdminApp } from './http/admin-app.ts';
import { createPublicApp } from './http/public-app.ts';
import { loadSigningKeys } from './keys/keystore.ts';
import type { Logger } from './log.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './store/embedded.ts';
import { migrate } from './store/migrate.ts';
import { createDb, type Db } from './store/postgres.ts';
import { createRedis } from './store/redis.ts';
import { ClientAdapter } from './tokens/clients.ts';
import { createProvider } from './tokens/provider.ts';
import { RedisTokenStore } from './tokens/redis-adapter.ts';

export type Stores = {
  db: Db;
  databaseUrl: string;
  embedded: EmbeddedPostgres | undefined;
  redis: Redis | undefined;
  kek: Buffer;
  close(): Promise<void>;
};

/** Postgres (or the embedded PGlite), Redis if configured, and the KEK. */
export async function openStores(config: Config, logger: Logger): Promise<Stores> {
  let embedded: EmbeddedPostgres | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres(config.dataDir);
    databaseUrl = embedded.url;
    await migrate(databaseUrl);
  }
  const db = createDb(databaseUrl, embedded ? 1 : config.databasePoolMax);
  let redis: Redis | undefined;
  if (config.redisUrl) {
    redis = createRedis(config.redisUrl, config.redisCommandTimeoutMs);
    redis.on('error', (err) => logger.warn({ err: { message: err.message } }, 'redis error'));
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
  provider: Provider;
  stores: Stores;
  tokenStore: RedisTokenStore | undefined;
  accounts: AccountsModule;
  close(): Promise<void>;
};

export async function startService(config: Config, logger: Logger): Promise<RunningService> {
  const development = !config.databaseUrl || !config.redisUrl;
  if (development) {
    logger.warn(
      '*** DEVELOPMENT MODE: ' +
        [
          !config.databaseUrl && `embedded PGlite database under ${config.dataDir} (DATABASE_URL not set)`,
          !config.redisUrl && 'in-memory token store, lost on restart, one process only (REDIS_URL not set)',
        ]
          .filter(Boolean)
          .join('; ') +
        '. Do not use this for real users. ***',
    );
  }
  const stores = await openStores(config, logger);
  const { db } = stores;
  const tokenStore = stores.redis ? new RedisTokenStore(stores.redis, config.redisKeyPrefix) : undefined;
  const memory = tokenStore ? undefined : memorySessions((await loadMemoryAdapter()) as never);
  const clients = new ClientAdapter(db);
  const hasher = new PasswordHasher(config.argon2);
  const accounts = createAccountsModule({ config, db, hasher, sessions: memory ?? redisSessions(tokenStore!), logger });
  await accounts.bootstrap().catch(async (err: unknown) => {
    await stores.close();
    throw err;
  });

  const provider = createProvider({
    config,
    scopes: config.scopes,
    signingKeys: await loadSigningKeys(db, stores.kek, config.signingAlg),
    adapter: ((model: string) =>
      model === 'Client' ? clients : tokenStore ? tokenStore.adapterFor(model) : memory!.adapterFor(model)) as never,
    authenticate: accounts.authenticate,
    findAccount: (id) => findActiveAccount(db, id),
  });
  provider.on('server_error', (_ctx, err) => logger.error({ err }, 'oidc-provider server_error'));
  provider.on('grant.error', accounts.onGrantError);

  const readiness = async () => {
    const [postgres, redis] = await Promise.all([
      db.$queryRaw`SELECT 1`.then(() => true, () => false),
      stores.redis ? stores.redis.ping().then(() => true, () => false) : Promise.resolve(true),
    ]);
    return { postgres, redis };
  };

  const publicServer = createPublicApp(provider, logger, accounts.selfServiceRouter).listen(config.port, config.host);
  const adminServer = createAdminApp(readiness, { router: accounts.adminRouter, logger }).listen(config.adminPort, config.host);
  await Promise.all([once(publicServer, 'listening'), once(adminServer, 'listening')]);
  const url = (s: Server) => `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${(s.address() as AddressInfo).port}`;
  logger.info({ public: url(publicServer), admin: url(adminServer), issuer: config.issuer }, 'identity service listening');

  return {
    publicUrl: url(publicServer),
    adminUrl: url(adminServer),
    provider,
    stores,
    tokenStore,
    accounts,
    async close() {
      await Promise.all([closeServer(publicServer), closeServer(adminServer)]);
      await stores.close();
    },
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

// oidc-provider's own in-memory adapter, for development without Redis.
async function loadMemoryAdapter(): Promise<new (model: string) => NonNullable<Configuration['adapter']>> {
  const mod = (await import('oidc-provider/lib/adapters/memory_adapter.js' as string)) as {
    default: new (model: string) => NonNullable<Configuration['adapter']>;
  };
  return mod.default;
}
