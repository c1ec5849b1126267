// Composition root: opens the stores, builds each layer's services from the
// bottom up (security → accounts, keys, clients → tokens → http/api), and
// knows how to shut all of it down. The only file that sees every layer.
import type { JWTVerifyGetKey } from 'jose';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type Provider from 'oidc-provider';
import { bootstrapAdmin } from './accounts/bootstrap.ts';
import { Accounts, type SessionCleanup } from './accounts/lifecycle.ts';
import { AUDIT_USERNAME_KEY_PURPOSE, PasswordLogin } from './accounts/login.ts';
import { LegacyIdp } from './accounts/legacy-idp.ts';
import { RECOVERY_KEY_PURPOSE, SecondFactor, TOTP_KEY_PURPOSE } from './accounts/mfa.ts';
import { PasswordHasher } from './accounts/passwords.ts';
import { Background } from './accounts/background.ts';
import { Mailer } from './accounts/mailer.ts';
import { Registration } from './accounts/registration.ts';
import { PasswordResets } from './accounts/reset.ts';
import { findActiveAccount, legacyHashCount } from './accounts/users.ts';
import { apiRouters } from './api/index.ts';
import { Clients, type ClientSessionCleanup } from './clients/index.ts';
import type { Config } from './config/index.ts';
import { ServiceError } from './errors.ts';
import { createAdminApp } from './http/admin-app.ts';
import { createPublicApp, publicListener } from './http/public-app.ts';
import { passwordShedDoor } from './http/shed-door.ts';
import { drainable } from './http/shutdown.ts';
import { keyPolicy, SigningKeys } from './keys/lifecycle.ts';
import type { Logger } from './observability/log.ts';
import { createMetrics, type Metrics } from './observability/metrics.ts';
import { deriveKey } from './lib/crypto.ts';
import { AuditLog } from './security/audit.ts';
import { ClientAuthThrottle } from './security/client-auth.ts';
import { countSecurityEvents, createSecurityEvents, type SecurityEvents } from './security/events.ts';
import { normalizeIp } from './security/client-ip.ts';
import { HashGate, prepareThreadPool } from './security/hash-gate.ts';
import { SelfServiceLimits } from './security/self-service-limits.ts';
import { LoginThrottle } from './security/throttle.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './store/embedded.ts';
import { databaseProblem, errorClass, redisWhere, type Problem } from './store/boot-checks.ts';
import { migrate } from './store/migrate.ts';
import { createDb, type Db } from './store/postgres.ts';
import { createRedis, type RedisClient } from './store/redis.ts';
import { ClientAdapter } from './tokens/client-adapter.ts';
import { memoryTokenStore, type MemoryTokenStore } from './tokens/memory-store.ts';
import { asAdapter } from './tokens/oidc.ts';
import { KeyRotation } from './tokens/key-rotation.ts';
import { MfaTickets } from './tokens/mfa-tickets.ts';
import { createProvider } from './tokens/provider.ts';
import { RedisTokenStore } from './tokens/redis-adapter.ts';
import { SessionTruth } from './tokens/sessions.ts';

export type Stores = {
  db: Db;
  databaseUrl: string;
  embedded: EmbeddedPostgres | undefined;
  redis: RedisClient | undefined;
  kek: Buffer;
  close(): Promise<void>;
};

/** Postgres (or the embedded PGlite), Redis if configured, and the KEK. */
export async function openStores(config: Config, logger: Logger, metrics?: Metrics, opts: { waitForRedis?: boolean } = {}): Promise<Stores> {
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
    // ioredis reconnects on its own (every 0.1-2 s): one line per kind of
    // failure, and one when it is back, instead of one per attempt.
    const where = redisWhere(config);
    let failing: string | undefined;
    // A CLI command does not retry: its one line is the error thrown below.
    let quiet = !opts.waitForRedis;
    redis.on('error', (err) => {
      metrics?.redisErrors.inc({ kind: 'connection' });
      const cls = errorClass(err);
      if (cls === failing) return;
      failing = cls;
      if (!quiet) logger.warn({ err: { message: err.message } }, `Redis at ${where} is unreachable: ${cls}; retrying (logged again when this changes)`);
    });
    redis.on('ready', () => {
      if (failing) logger.info(`Redis at ${where} is reachable again`);
      failing = undefined;
    });
    if (opts.waitForRedis) {
      redis.connect().catch(() => {}); // startService waits for it to be ready
    } else {
      await redis.connect().catch((err: unknown) => {
        redis!.disconnect();
        // ioredis rejects with "Connection is closed."; the cause came to the error listener.
        throw new ServiceError('temporarily_unavailable', `Redis at ${where} is unreachable: ${failing ?? errorClass(err)}`);
      });
      quiet = false;
    }
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

/** Most a self-service request's after-the-answer work waits before it starts (see src/accounts/background.ts). */
const BACKGROUND_MAX_DELAY_MS = 500;

/** What a running service shares with its domain services: its hasher (with metrics), events and hash gate. */
export type ServiceExtras = { hasher?: PasswordHasher; events?: SecurityEvents; gate?: HashGate };

/** The services of the accounts, clients and keys layers, as the CLI and the service both use them. */
export function domainServices(
  config: Config,
  stores: Stores,
  logger: Logger,
  sessions: SessionCleanup & ClientSessionCleanup,
  extras: ServiceExtras = {},
) {
  const { db } = stores;
  const audit = new AuditLog(db, logger);
  const passwords = extras.hasher ?? new PasswordHasher(config.argon2);
  const events = extras.events ?? createSecurityEvents(logger);
  const login = new PasswordLogin({
    db,
    hasher: passwords,
    throttle: new LoginThrottle(config.abuse, events, { redis: stores.redis, prefix: config.redisKeyPrefix }),
    gate: extras.gate ?? new HashGate(config.abuse.maxConcurrentHashes),
    events,
    audit,
    ipv6PrefixBits: config.abuse.ipv6PrefixBits,
    auditKey: deriveKey(stores.kek, AUDIT_USERNAME_KEY_PURPOSE),
    ...(config.legacyIdp.mode !== 'off'
      ? { legacy: { idp: new LegacyIdp(config.legacyIdp, db, (outcome) => events.emit('legacy_idp.checked', { outcome })), roles: config.roles } }
      : {}),
  });
  const accounts = new Accounts({ db, hasher: passwords, policy: config.passwordPolicy, roles: config.roles, sessions, audit, logger, login });
  const secondFactor = new SecondFactor({
    db,
    login,
    audit,
    events,
    sessions,
    logger,
    secretKey: deriveKey(stores.kek, TOTP_KEY_PURPOSE),
    recoveryKey: deriveKey(stores.kek, RECOVERY_KEY_PURPOSE),
    issuerName: config.mfa.totpIssuer,
    requiredRoles: config.mfa.requiredRoles,
  });
  const limits = new SelfServiceLimits(config.selfService, stores.redis, config.redisKeyPrefix, events);
  const mailer = new Mailer(config.mail, logger);
  const background = new Background(BACKGROUND_MAX_DELAY_MS, logger);
  return {
    audit,
    hasher: passwords,
    login,
    accounts,
    secondFactor,
    /** Self-service work still running after its answer; settle() before closing the stores. */
    background,
    registration: new Registration({
      mode: config.registrationMode,
      accounts,
      db,
      hasher: passwords,
      audit,
      limits,
      mailer,
      background,
      resetUrl: config.mail.resetUrl,
    }),
    resets: new PasswordResets({ accounts, db, audit, mail: config.mail, mailer, limits, background }),
    clients: new Clients({ db, audit, knownScopes: config.scopes, knownResources: [config.adminAudience], sessions, logger }),
    keys: new SigningKeys({ db, kek: stores.kek, policy: keyPolicy(config), audit }),
  };
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
  /** Security events (logins, throttling, refresh reuse): subscribe for audit and metrics. */
  events: SecurityEvents;
  /** Who may still hold a session (Postgres): for the verifier's isRevoked hook in process. */
  sessions: SessionTruth;
  services: ReturnType<typeof domainServices>;
  /** Readiness turns 503 at once; requests are served SHUTDOWN_DELAY_MS more, then everything closes. */
  close(): Promise<void>;
};

export async function startService(config: Config, logger: Logger): Promise<RunningService> {
  // First, before anything uses libuv's thread pool (it is sized on first use).
  const pool = await prepareThreadPool({ maxConcurrentHashes: config.abuse.maxConcurrentHashes, nice: config.abuse.hashThreadNice });
  if (pool.threads && pool.threads <= config.abuse.maxConcurrentHashes) {
    logger.warn(
      { threads: pool.threads, maxConcurrentHashes: config.abuse.maxConcurrentHashes },
      'the thread pool is no larger than MAX_CONCURRENT_HASHES: token signing will wait behind password hashing (raise UV_THREADPOOL_SIZE)',
    );
  }
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

  // Built once: throttling state, the hash gate and the stores outlive provider rebuilds.
  const gate = new HashGate(config.abuse.maxConcurrentHashes);
  // Scrape-time gauges read the stores opened just below.
  let services: ReturnType<typeof domainServices> | undefined;
  let database: Db | undefined;
  const metrics = createMetrics({
    hashesInFlight: () => gate.inFlight,
    legacyHashes: () => legacyHashCount(database!),
    signingKeys: async () =>
      (await services!.keys.list())
        .filter((k) => k.status === 'active' || k.status === 'next' || k.status === 'retiring')
        .map((k) => ({ kid: k.kid, alg: k.alg, status: k.status, since: new Date(k.activated_at ?? k.created_at) })),
  });
  // Both ports listen first: a port in use or a bad HOST ends the boot at once
  // (naming the variable), and while Postgres, the schema or Redis are not
  // there yet, /livez answers 200, /readyz 503 and the public port 503.
  const boot = { postgres: false, schema: false, redis: false };
  const starting: RequestListener = (_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1', 'cache-control': 'no-store' });
    res.end(JSON.stringify({ error: 'temporarily_unavailable', error_description: 'the service is starting' }));
  };
  let publicHandler: RequestListener = starting;
  let adminHandler: RequestListener = createAdminApp(async () => ({ ...boot, signingKey: false, notDraining: true }), { logger, metrics });
  const publicServer = createServer({ maxHeaderSize: config.http.maxHeaderBytes }, (req, res) => publicHandler(req, res));
  const adminServer = createServer((req, res) => adminHandler(req, res));
  const [publicDrain, adminDrain] = [drainable(publicServer), drainable(adminServer)];
  const closeServers = async () => {
    await Promise.all([publicDrain.close(), adminDrain.close()]);
  };
  try {
    await listen(publicServer, config.port, config.host, 'PORT');
    await listen(adminServer, config.adminPort, config.host, 'ADMIN_PORT');
  } catch (err) {
    await closeServers();
    throw err;
  }

  const stores = await openStores(config, logger, metrics, { waitForRedis: true });
  try {
    await waitForStores(stores, config, logger, boot);
  } catch (err) {
    await stores.close();
    await closeServers();
    throw err;
  }
  const { db } = stores;
  database = db;
  const events = createSecurityEvents(logger);
  countSecurityEvents(events, metrics);

  const tokenStore = stores.redis
    ? new RedisTokenStore(stores.redis, config.redisKeyPrefix, {
        wait: { replicas: config.redisWaitReplicas, timeoutMs: Math.floor(config.redisCommandTimeoutMs / 2) },
        events,
        graceSeconds: config.abuse.refreshReuseGraceSeconds,
        accessTokenTtl: config.accessTokenTtl,
        commandTimeoutMs: config.redisCommandTimeoutMs,
      })
    : undefined;
  const memory: MemoryTokenStore | undefined = tokenStore ? undefined : await memoryTokenStore();
  const sessions = tokenStore ?? memory!;
  const hasher = new PasswordHasher(config.argon2, (operation, seconds) => metrics.passwordHashDuration.observe({ operation }, seconds));
  services = domainServices(config, stores, logger, sessions, { hasher, events, gate });
  const { accounts, audit, login } = services;
  await bootstrapAdmin(accounts, config.adminBootstrap, logger).catch(async (err: unknown) => {
    await stores.close();
    await closeServers();
    throw err;
  });

  const clientReader = new ClientAdapter(db, config.issuer, tokenStore);
  const sessionTruth = new SessionTruth(db);
  const { secondFactor } = services;
  const tickets = new MfaTickets(stores.redis, config.redisKeyPrefix, config.redisCommandTimeoutMs);
  const providerDeps = {
    config,
    adapterFor: (model: string) => (tokenStore ? asAdapter(tokenStore.adapterFor(model)) : memory!.adapterFor(model)),
    clients: asAdapter(clientReader),
    prefetchClient: (ctx: object, id: string) => clientReader.prefetch(ctx, id),
    ...(tokenStore ? { prefetchLogin: (ctx: object, token: string) => tokenStore.prefetch(ctx, token) } : {}),
    login: login.attempt.bind(login),
    mfa: {
      tickets,
      mfaState: (id: string) => secondFactor.state(id),
      checkSecondFactor: secondFactor.checkAccount.bind(secondFactor),
    },
    // Refresh re-reads the user (a disabled user cannot refresh): Postgres
    // down means 503 for refresh too, never a token for a stale account.
    findAccount: (id: string) => findActiveAccount(db, id),
    clientAuth: new ClientAuthThrottle(
      config.abuse.clientAuth,
      { redis: stores.redis, prefix: config.redisKeyPrefix },
      { ipv6PrefixBits: config.abuse.ipv6PrefixBits, familiarSourceSeconds: config.abuse.familiarSourceSeconds },
    ),
    events,
    audit,
    metrics,
    logger,
    // `keys` is built just below; only read once requests arrive.
    verificationKeys: (): JWTVerifyGetKey => keys.verificationKeys(),
    sessions: sessionTruth,
  };
  // A new provider is built whenever the signing key changes (src/tokens/key-rotation.ts).
  const keys = new KeyRotation({
    keys: services.keys,
    syncInterval: config.keySyncInterval,
    jwksMaxAge: config.jwksMaxAge,
    maxMissedSyncs: config.keySyncMaxMissed,
    configuredAlg: config.signingAlg,
    metrics,
    logger,
    buildProvider: (signingKey) => createProvider(providerDeps, signingKey),
  });
  await keys.start();
  let draining = false;

  const readiness = async () => {
    const [postgres, redis] = await Promise.all([
      db.$queryRaw`SELECT 1`.then(
        () => true,
        () => false,
      ),
      stores.redis
        ? stores.redis.ping().then(
            () => true,
            () => false,
          )
        : Promise.resolve(true),
    ]);
    if (!postgres) metrics.postgresErrors.inc({ kind: 'readiness' });
    if (!redis) metrics.redisErrors.inc({ kind: 'readiness' });
    return { postgres, redis, signingKey: keys.fitToSign, notDraining: !draining };
  };

  const api = apiRouters({
    config,
    accounts,
    registration: services.registration,
    resets: services.resets,
    clients: services.clients,
    audit,
    keys: keys.verificationKeys(),
    keyPublished: (kid) => services.keys.isPublished(kid),
    sessions: sessionTruth,
    secondFactor,
    tickets,
  });
  const publicApp = createPublicApp(keys, logger, keys.jwks(), {
    trustProxyHops: config.trustProxyHops,
    maxBodyBytes: config.http.maxBodyBytes,
    corsOrigins: config.corsOrigins,
    accountRoutes: api.selfService,
    metrics,
    shedDoor: passwordShedDoor(gate, (ip) => {
      events.emit('login.shed', { clientId: null, ip: normalizeIp(ip), via: 'token' });
      metrics.tokenRequests.inc({ grant_type: 'password', outcome: 'temporarily_unavailable' });
    }),
  });
  publicHandler = publicListener(publicApp, keys.jwks(), config.corsOrigins, api.forwardAuth);
  adminHandler = createAdminApp(readiness, { logger, metrics, api: api.admin });
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
    sessions: sessionTruth,
    services,
    async close() {
      keys.stop();
      draining = true;
      publicDrain.startDraining();
      adminDrain.startDraining();
      if (config.shutdownDelayMs) await new Promise((r) => setTimeout(r, config.shutdownDelayMs));
      // The admin port closes last: probes keep seeing 503 while requests finish.
      await publicDrain.close();
      await adminDrain.close();
      await services!.background.settle();
      await stores.close();
    },
  };
}

/** Listens, or fails with one line naming the variable (port in use, HOST not on this machine). */
function listen(server: Server, port: number, host: string, variable: 'PORT' | 'ADMIN_PORT'): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => {
      server.off('listening', listening);
      const why =
        err.code === 'EADDRINUSE'
          ? `${variable} ${port} is already in use`
          : err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN'
            ? `HOST ${host} is not an address of this machine`
            : err.code === 'EACCES'
              ? `no permission to listen on ${variable} ${port}`
              : `${err.code ?? ''} ${err.message}`.trim();
      reject(new ServiceError('config_invalid', `cannot listen on ${host}:${port}: ${why}`));
    };
    const listening = () => {
      server.off('error', failed);
      resolve();
    };
    server.once('error', failed).once('listening', listening).listen(port, host);
  });
}

const BOOT_RETRY_MAX_MS = 2000;

/**
 * Returns when Postgres answers, its schema has every migration and Redis is
 * ready; until then retries with backoff, logging each kind of problem once
 * (Redis's own failures are logged by its error listener) and keeping `boot`
 * current for /readyz.
 */
async function waitForStores(stores: Stores, config: Config, logger: Logger, boot: { postgres: boolean; schema: boolean; redis: boolean }): Promise<void> {
  let logged: string | undefined;
  let delay = 250;
  for (;;) {
    // The embedded database is in-process and migrated by openStores.
    const db: Problem | undefined = stores.embedded ? undefined : await databaseProblem(stores.databaseUrl);
    boot.postgres = !db || db.class.startsWith('schema:');
    boot.schema = !db;
    boot.redis = !stores.redis || stores.redis.status === 'ready';
    if (!db && boot.redis) break;
    const problem = db ?? { class: 'redis', line: `waiting for Redis at ${redisWhere(config)}` };
    if (problem.class !== logged) {
      logged = problem.class;
      logger.warn(problem.line);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, BOOT_RETRY_MAX_MS);
  }
  if (logged) logger.info('Postgres, its schema and Redis are ready: starting');
}
