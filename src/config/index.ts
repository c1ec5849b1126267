// Configuration: read from the environment once, validated by one zod schema,
// frozen. Every variable, its default and its meaning is in .env.example and
// in README's configuration table; keep the three in step.
import { z } from 'zod';
import { ServiceError } from '../errors.ts';

const seconds = z.coerce.number().int().positive();
const optionalUrl = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .pipe(z.url().optional())
  .optional();

// "host:port" list, comma or space separated; IPv6 hosts in brackets.
const hostPorts = z
  .string()
  .trim()
  .transform((v) => v.split(/[\s,]+/).filter(Boolean))
  .pipe(
    z.array(
      z
        .string()
        .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be a list of host:port')
        .transform((hp) => {
          const at = hp.lastIndexOf(':');
          return { host: hp.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(hp.slice(at + 1)) };
        })
        .refine((n) => n.port >= 1 && n.port <= 65535, 'port must be 1-65535'),
    ),
  )
  .optional();
const optionalSecret = z
  .string()
  .optional()
  .transform((v) => (v ? v : undefined));

// OWASP's argon2id equivalence set (m=47104/t=1 ... m=7168/t=5) all spend at
// least this much memory × passes; below it a hash is cheaper than OWASP allows.
const ARGON2_MIN_COST_KIB_PASSES = 7168 * 5;

const schema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    HOST: z.string().min(1).default('127.0.0.1'),
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    ADMIN_PORT: z.coerce.number().int().min(0).max(65535).default(3001),
    // Checked below, with one message that says what an issuer looks like.
    ISSUER: z.string().trim().optional().transform((v) => (v ? v : undefined)),
    DATABASE_URL: optionalUrl,
    DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
    REDIS_URL: optionalUrl,
    REDIS_SENTINELS: hostPorts,
    REDIS_SENTINEL_NAME: z.string().trim().optional().transform((v) => (v ? v : undefined)),
    REDIS_SENTINEL_PASSWORD: optionalSecret,
    REDIS_CLUSTER_NODES: hostPorts,
    REDIS_PASSWORD: optionalSecret,
    REDIS_WAIT_REPLICAS: z.coerce.number().int().min(0).max(16).default(0),
    // Braces would become the Redis Cluster hash tag of every key (one slot).
    REDIS_KEY_PREFIX: z.string().max(64).regex(/^[^{}]*$/, 'must not contain { or }').default('idp:'),
    REDIS_COMMAND_TIMEOUT_MS: z.coerce.number().int().min(50).max(10_000).default(1000),
    DATA_DIR: z.string().min(1).default('./data'),
    KEY_ENCRYPTION_KEY: z
      .string()
      .trim()
      .optional()
      .transform((v) => (v ? v : undefined)),
    OLD_KEY_ENCRYPTION_KEY: z
      .string()
      .trim()
      .optional()
      .transform((v) => (v ? v : undefined)),
    KEY_ROTATION_INTERVAL: z.coerce.number().int().min(0).max(10 * 365 * 86_400).default(30 * 86_400),
    JWKS_MAX_AGE: z.coerce.number().int().min(0).max(86_400).default(600),
    KEY_SYNC_INTERVAL: z.coerce.number().int().min(1).max(300).default(5),
    // A replica whose key sync has failed this many intervals in a row stops signing and turns unready.
    KEY_SYNC_MAX_MISSED: z.coerce.number().int().min(1).max(100).default(3),
    SIGNING_ALG: z
      .string()
      .default('ES256')
      .refine((v) => v !== 'RS256', {
        message: 'RS256 is not allowed (OWASP ASVS 5.0 appendix C); use ES256, EdDSA or PS256',
      })
      .pipe(z.enum(['ES256', 'EdDSA', 'PS256'])),
    TOKEN_AUDIENCE: z.url().default('api://default'),
    ADMIN_AUDIENCE: optionalUrl,
    // Clients (ids, space separated) that may introspect any client's tokens: resource servers, gateways.
    INTROSPECTION_CLIENTS: z
      .string()
      .default('')
      .transform((v) => [...new Set(v.split(/[\s,]+/).filter(Boolean))]),
    SCOPES: z
      .string()
      .default('api:read api:write')
      .transform((v) => [...new Set(v.split(/\s+/).filter(Boolean))])
      .pipe(z.array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'not a valid scope token'))),
    ACCESS_TOKEN_TTL: seconds.max(86_400).default(900),
    REFRESH_TOKEN_IDLE_TTL: seconds.default(14 * 86_400),
    REFRESH_TOKEN_ABSOLUTE_TTL: seconds.default(30 * 86_400),
    ARGON2_MEMORY_KIB: z.coerce.number().int().min(7168).max(4 * 1024 * 1024).default(19_456),
    ARGON2_TIME_COST: z.coerce.number().int().min(1).max(20).default(2),
    ARGON2_PARALLELISM: z.coerce.number().int().min(1).max(16).default(1),
    SHUTDOWN_DELAY_MS: z.coerce.number().int().min(0).max(60_000).default(0),
    SHUTDOWN_GRACE_MS: z.coerce.number().int().min(1000).max(300_000).default(20_000),
    PASSWORD_MIN_LENGTH: z.coerce.number().int().min(8, 'must be at least 8 (NIST 800-63B)').max(64).default(12),
    PASSWORD_COMPOSITION: z
      .string()
      .default('')
      .transform((v) => [...new Set(v.split(/[\s,]+/).filter(Boolean))])
      .pipe(z.array(z.enum(['upper', 'lower', 'digit', 'special']))),
    ROLES: z
      .string()
      .default('admin engineer viewer')
      .transform((v) => [...new Set(v.split(/[\s,]+/).filter(Boolean))])
      .pipe(z.array(z.string().regex(/^[a-z][a-z0-9_:.-]{0,63}$/, 'lower-case role names')).min(1)),
    REGISTRATION_MODE: z.enum(['closed', 'open', 'approval']).default('closed'),
    // Second factor (README "Second factor"): roles that must have one; the name authenticator apps show.
    MFA_REQUIRED_ROLES: z
      .string()
      .default('')
      .transform((v) => [...new Set(v.split(/[\s,]+/).filter(Boolean))]),
    MFA_TOTP_ISSUER: z.string().trim().min(1).max(64).default('identity'),
    ADMIN_BOOTSTRAP_EMAIL: z.string().trim().optional().transform((v) => (v ? v : undefined)),
    ADMIN_BOOTSTRAP_PASSWORD_FILE: z.string().trim().optional().transform((v) => (v ? v : undefined)),
    SMTP_URL: optionalUrl,
    MAIL_FROM: z.string().min(3).default('identity@localhost'),
    PASSWORD_RESET_URL: optionalUrl,
    PASSWORD_RESET_TTL: seconds.min(60).max(86_400).default(1800),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    // Abuse resistance (see SECURITY.md).
    // GET /verify?check_revocation=1 reuses a login's revocation answer this long.
    FORWARD_AUTH_CACHE_SECONDS: z.coerce.number().int().min(0).max(300).default(5),
    TRUST_PROXY_HOPS: z.coerce.number().int().min(0).max(10).default(0),
    CORS_ORIGINS: z
      .string()
      .default('')
      .transform((v) => [...new Set(v.split(/[\s,]+/).filter(Boolean))])
      .pipe(z.array(z.string().refine((u) => URL.canParse(u) && new URL(u).origin === u, 'must be a list of origins: scheme://host[:port]'))),
    LOGIN_FREE_FAILURES: z.coerce.number().int().min(1).max(100).default(5),
    LOGIN_BLOCK_BASE_SECONDS: z.coerce.number().int().min(1).max(3600).default(1),
    LOGIN_BLOCK_MAX_SECONDS: z.coerce.number().int().min(1).max(86_400).default(900),
    LOGIN_FAILURE_WINDOW_SECONDS: z.coerce.number().int().min(1).max(86_400).default(3600),
    LOGIN_USER_MAX_FAILURES: z.coerce.number().int().min(1).max(1_000_000).default(50),
    LOGIN_IP_MAX_FAILURES: z.coerce.number().int().min(1).max(1_000_000).default(200),
    LOGIN_SPRAY_ALERT_PER_MINUTE: z.coerce.number().int().min(1).max(10_000_000).default(600),
    LOGIN_FAMILIAR_SOURCE_SECONDS: z.coerce.number().int().min(0).max(365 * 86_400).default(30 * 86_400),
    RATE_LIMIT_IPV6_PREFIX: z.coerce.number().int().min(32).max(128).default(64),
    CLIENT_AUTH_IP_MAX_FAILURES: z.coerce.number().int().min(1).max(1_000_000).default(100),
    CLIENT_AUTH_CLIENT_MAX_FAILURES: z.coerce.number().int().min(1).max(1_000_000).default(1000),
    CLIENT_AUTH_FAILURE_WINDOW_SECONDS: z.coerce.number().int().min(1).max(86_400).default(300),
    SELF_SERVICE_IP_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(30),
    SELF_SERVICE_EMAIL_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(3),
    SELF_SERVICE_WINDOW_SECONDS: z.coerce.number().int().min(1).max(86_400).default(3600),
    MAX_CONCURRENT_HASHES: z.coerce.number().int().min(1).max(256).default(2),
    HASH_THREAD_NICE: z.coerce.number().int().min(0).max(19).default(10),
    REFRESH_REUSE_GRACE_SECONDS: z.coerce.number().int().min(0).max(60).default(0),
    // Trickle migration from a legacy identity provider (README "Migrating in").
    LEGACY_IDP_MODE: z.enum(['off', 'password_grant', 'hook']).default('off'),
    LEGACY_IDP_TOKEN_URL: optionalUrl,
    LEGACY_IDP_CLIENT_ID: z.string().optional(),
    LEGACY_IDP_CLIENT_SECRET: z.string().optional(),
    LEGACY_IDP_SCOPE: z.string().optional(),
    LEGACY_IDP_HOOK_URL: optionalUrl,
    LEGACY_IDP_HOOK_SECRET: z.string().min(16).optional(),
    LEGACY_IDP_ROLES_CLAIM: z.string().default('roles'),
    LEGACY_IDP_ROLE_MAP: z.string().default(''),
    LEGACY_IDP_SOURCE: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/).default('legacy-idp'),
    LEGACY_IDP_TIMEOUT_MS: z.coerce.number().int().min(100).max(30_000).default(3000),
    LEGACY_IDP_BREAKER_FAILURES: z.coerce.number().int().min(1).max(1000).default(5),
    LEGACY_IDP_BREAKER_OPEN_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
    HTTP_MAX_HEADER_BYTES: z.coerce.number().int().min(1024).max(65_536).default(8192),
    HTTP_MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(56 * 1024).default(16_384),
  })
  .superRefine((env, ctx) => {
    if (env.LEGACY_IDP_MODE === 'password_grant' && !(env.LEGACY_IDP_TOKEN_URL && env.LEGACY_IDP_CLIENT_ID && env.LEGACY_IDP_CLIENT_SECRET)) {
      ctx.addIssue({ code: 'custom', path: ['LEGACY_IDP_TOKEN_URL'], message: 'LEGACY_IDP_MODE=password_grant needs LEGACY_IDP_TOKEN_URL, LEGACY_IDP_CLIENT_ID and LEGACY_IDP_CLIENT_SECRET' });
    }
    if (env.LEGACY_IDP_MODE === 'hook' && !(env.LEGACY_IDP_HOOK_URL && env.LEGACY_IDP_HOOK_SECRET)) {
      ctx.addIssue({ code: 'custom', path: ['LEGACY_IDP_HOOK_URL'], message: 'LEGACY_IDP_MODE=hook needs LEGACY_IDP_HOOK_URL and LEGACY_IDP_HOOK_SECRET (16 characters or more)' });
    }
    // Caught here, before anything is opened: exit at once naming the variable.
    if (env.PORT !== 0 && env.PORT === env.ADMIN_PORT) {
      ctx.addIssue({ code: 'custom', path: ['ADMIN_PORT'], message: `must differ from PORT (both ${env.PORT})` });
    }
    if (env.ISSUER && !(URL.canParse(env.ISSUER) && /^https?:\/\/[^/]/.test(env.ISSUER))) {
      ctx.addIssue({ code: 'custom', path: ['ISSUER'], message: 'must be an http:// or https:// URL, e.g. https://id.example.com' });
    }
    if (!/^(\[[0-9a-fA-F:.]+\]|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$/.test(env.HOST)) {
      ctx.addIssue({ code: 'custom', path: ['HOST'], message: 'must be an IP address or a host name, e.g. 127.0.0.1 or 0.0.0.0' });
    }
    if (env.REFRESH_TOKEN_IDLE_TTL > env.REFRESH_TOKEN_ABSOLUTE_TTL) {
      ctx.addIssue({
        code: 'custom',
        path: ['REFRESH_TOKEN_IDLE_TTL'],
        message: 'must not exceed REFRESH_TOKEN_ABSOLUTE_TTL',
      });
    }
    if (env.SHUTDOWN_DELAY_MS >= env.SHUTDOWN_GRACE_MS) {
      ctx.addIssue({ code: 'custom', path: ['SHUTDOWN_DELAY_MS'], message: 'must be less than SHUTDOWN_GRACE_MS' });
    }
    if (env.ARGON2_MEMORY_KIB * env.ARGON2_TIME_COST < ARGON2_MIN_COST_KIB_PASSES) {
      ctx.addIssue({
        code: 'custom',
        path: ['ARGON2_MEMORY_KIB'],
        message: `ARGON2_MEMORY_KIB × ARGON2_TIME_COST must be at least ${ARGON2_MIN_COST_KIB_PASSES} (OWASP minimum)`,
      });
    }
    const topologies = (['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const).filter((n) => env[n]?.length);
    if (topologies.length > 1) {
      ctx.addIssue({ code: 'custom', path: [topologies[1]!], message: `set only one of ${topologies.join(', ')}` });
    }
    if (env.REDIS_SENTINELS?.length && !env.REDIS_SENTINEL_NAME) {
      ctx.addIssue({ code: 'custom', path: ['REDIS_SENTINEL_NAME'], message: 'is required with REDIS_SENTINELS' });
    }
    if (env.NODE_ENV === 'production') {
      for (const name of ['DATABASE_URL', 'REDIS_URL', 'KEY_ENCRYPTION_KEY', 'ISSUER'] as const) {
        if (name === 'REDIS_URL' && topologies.length) continue;
        const message = name === 'REDIS_URL' ? 'is required when NODE_ENV=production (or REDIS_SENTINELS, or REDIS_CLUSTER_NODES)' : 'is required when NODE_ENV=production';
        if (!env[name]) ctx.addIssue({ code: 'custom', path: [name], message });
      }
    }
    if (!!env.ADMIN_BOOTSTRAP_EMAIL !== !!env.ADMIN_BOOTSTRAP_PASSWORD_FILE) {
      ctx.addIssue({
        code: 'custom',
        path: ['ADMIN_BOOTSTRAP_PASSWORD_FILE'],
        message: 'ADMIN_BOOTSTRAP_EMAIL and ADMIN_BOOTSTRAP_PASSWORD_FILE go together',
      });
    }
    for (const name of ['KEY_ENCRYPTION_KEY', 'OLD_KEY_ENCRYPTION_KEY'] as const) {
      if (env[name] && Buffer.from(env[name], 'base64').length !== 32) {
        ctx.addIssue({ code: 'custom', path: [name], message: 'must be 32 bytes, base64-encoded (openssl rand -base64 32)' });
      }
    }
    if (env.ADMIN_AUDIENCE && env.ADMIN_AUDIENCE === env.TOKEN_AUDIENCE) {
      ctx.addIssue({ code: 'custom', path: ['ADMIN_AUDIENCE'], message: 'must differ from TOKEN_AUDIENCE' });
    }
    if (env.KEY_ROTATION_INTERVAL > 0 && env.KEY_ROTATION_INTERVAL <= env.JWKS_MAX_AGE + env.KEY_SYNC_INTERVAL) {
      ctx.addIssue({
        code: 'custom',
        path: ['KEY_ROTATION_INTERVAL'],
        message: 'must exceed JWKS_MAX_AGE + KEY_SYNC_INTERVAL (a new key is published that long before it signs), or be 0',
      });
    }
  });

export type HostPort = Readonly<{ host: string; port: number }>;
export type RedisTopology = Readonly<
  | { kind: 'single'; url: string }
  | { kind: 'sentinel'; sentinels: readonly HostPort[]; name: string; password?: string; sentinelPassword?: string }
  | { kind: 'cluster'; nodes: readonly HostPort[]; password?: string }
>;

type Env = z.output<typeof schema>;

// The validated environment, shaped for the code. Config is this function's
// type: nothing restates the schema.
function toConfig(e: Env) {
  const issuer = (e.ISSUER ?? `http://localhost:${e.PORT}`).replace(/\/$/, '');
  return Object.freeze({
    env: e.NODE_ENV,
    host: e.HOST,
    port: e.PORT,
    adminPort: e.ADMIN_PORT,
    /** `iss` of every token, without a trailing slash. */
    issuer,
    databaseUrl: e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    /** Where Redis is: one node (REDIS_URL), Sentinel, or Cluster; undefined = in-memory development store. */
    redisTopology: redisTopology(e),
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    /** Replicas that must acknowledge a token write (WAIT) before the token is issued; 0 = do not wait. */
    redisWaitReplicas: e.REDIS_WAIT_REPLICAS,
    dataDir: e.DATA_DIR,
    keyEncryptionKey: e.KEY_ENCRYPTION_KEY ? Buffer.from(e.KEY_ENCRYPTION_KEY, 'base64') : undefined,
    oldKeyEncryptionKey: e.OLD_KEY_ENCRYPTION_KEY ? Buffer.from(e.OLD_KEY_ENCRYPTION_KEY, 'base64') : undefined,
    keyRotationInterval: e.KEY_ROTATION_INTERVAL,
    jwksMaxAge: e.JWKS_MAX_AGE,
    keySyncInterval: e.KEY_SYNC_INTERVAL,
    keySyncMaxMissed: e.KEY_SYNC_MAX_MISSED,
    signingAlg: e.SIGNING_ALG,
    audience: e.TOKEN_AUDIENCE,
    /** `aud` of admin API tokens: only clients allowed this resource get them (RFC 8707 `resource`). */
    adminAudience: e.ADMIN_AUDIENCE ?? `${issuer}/admin`,
    scopes: Object.freeze(e.SCOPES) as readonly string[],
    /** Clients that may introspect tokens issued to other clients. */
    introspectionClients: Object.freeze(e.INTROSPECTION_CLIENTS) as readonly string[],
    accessTokenTtl: e.ACCESS_TOKEN_TTL,
    refreshTokenIdleTtl: e.REFRESH_TOKEN_IDLE_TTL,
    refreshTokenAbsoluteTtl: e.REFRESH_TOKEN_ABSOLUTE_TTL,
    argon2: Object.freeze({ memoryCost: e.ARGON2_MEMORY_KIB, timeCost: e.ARGON2_TIME_COST, parallelism: e.ARGON2_PARALLELISM }),
    passwordPolicy: Object.freeze({
      minLength: e.PASSWORD_MIN_LENGTH,
      composition: Object.freeze(e.PASSWORD_COMPOSITION) as readonly ('upper' | 'lower' | 'digit' | 'special')[],
    }),
    roles: Object.freeze(e.ROLES) as readonly string[],
    mfa: Object.freeze({ requiredRoles: Object.freeze(e.MFA_REQUIRED_ROLES) as readonly string[], totpIssuer: e.MFA_TOTP_ISSUER }),
    registrationMode: e.REGISTRATION_MODE,
    adminBootstrap:
      e.ADMIN_BOOTSTRAP_EMAIL && e.ADMIN_BOOTSTRAP_PASSWORD_FILE
        ? Object.freeze({ email: e.ADMIN_BOOTSTRAP_EMAIL, passwordFile: e.ADMIN_BOOTSTRAP_PASSWORD_FILE })
        : undefined,
    mail: Object.freeze({
      smtpUrl: e.SMTP_URL,
      from: e.MAIL_FROM,
      resetUrl: e.PASSWORD_RESET_URL ?? `${issuer}/password/reset`,
      resetTtl: e.PASSWORD_RESET_TTL,
    }),
    logLevel: e.LOG_LEVEL,
    shutdownDelayMs: e.SHUTDOWN_DELAY_MS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    trustProxyHops: e.TRUST_PROXY_HOPS,
    /** GET /verify?check_revocation=1: seconds a login's verdict from Postgres is reused (a revocation shows within it). */
    forwardAuthCacheSeconds: e.FORWARD_AUTH_CACHE_SECONDS,
    corsOrigins: Object.freeze(e.CORS_ORIGINS) as readonly string[],
    abuse: Object.freeze({
      freeFailures: e.LOGIN_FREE_FAILURES,
      blockBaseSeconds: e.LOGIN_BLOCK_BASE_SECONDS,
      blockMaxSeconds: e.LOGIN_BLOCK_MAX_SECONDS,
      failureWindowSeconds: e.LOGIN_FAILURE_WINDOW_SECONDS,
      userMaxFailures: e.LOGIN_USER_MAX_FAILURES,
      ipMaxFailures: e.LOGIN_IP_MAX_FAILURES,
      sprayAlertPerMinute: e.LOGIN_SPRAY_ALERT_PER_MINUTE,
      /** How long a source stays familiar after a successful login from it (0: never familiar). */
      familiarSourceSeconds: e.LOGIN_FAMILIAR_SOURCE_SECONDS,
      /** Per-IP limits count an IPv6 address as its prefix of this many bits. */
      ipv6PrefixBits: e.RATE_LIMIT_IPV6_PREFIX,
      clientAuth: Object.freeze({
        ipMaxFailures: e.CLIENT_AUTH_IP_MAX_FAILURES,
        clientMaxFailures: e.CLIENT_AUTH_CLIENT_MAX_FAILURES,
        windowSeconds: e.CLIENT_AUTH_FAILURE_WINDOW_SECONDS,
      }),
      maxConcurrentHashes: e.MAX_CONCURRENT_HASHES,
      /** Nice value of the hashing threads (0 = unchanged). */
      hashThreadNice: e.HASH_THREAD_NICE,
      refreshReuseGraceSeconds: e.REFRESH_REUSE_GRACE_SECONDS,
    }),
    /** POST /register and /password/forgot: requests per IP (IPv6 per RATE_LIMIT_IPV6_PREFIX) and per email address, each route in each window. */
    selfService: Object.freeze({
      ipMax: e.SELF_SERVICE_IP_LIMIT,
      emailMax: e.SELF_SERVICE_EMAIL_LIMIT,
      windowSeconds: e.SELF_SERVICE_WINDOW_SECONDS,
      ipv6PrefixBits: e.RATE_LIMIT_IPV6_PREFIX,
    }),
    http: Object.freeze({ maxHeaderBytes: e.HTTP_MAX_HEADER_BYTES, maxBodyBytes: e.HTTP_MAX_BODY_BYTES }),
    /** Trickle migration: unknown users' passwords checked against the legacy identity provider (src/accounts/legacy-idp.ts). */
    legacyIdp: Object.freeze({
      mode: e.LEGACY_IDP_MODE,
      tokenUrl: e.LEGACY_IDP_TOKEN_URL,
      clientId: e.LEGACY_IDP_CLIENT_ID,
      clientSecret: e.LEGACY_IDP_CLIENT_SECRET,
      scope: e.LEGACY_IDP_SCOPE,
      hookUrl: e.LEGACY_IDP_HOOK_URL,
      hookSecret: e.LEGACY_IDP_HOOK_SECRET,
      rolesClaim: e.LEGACY_IDP_ROLES_CLAIM,
      roleMap: Object.freeze(Object.fromEntries(e.LEGACY_IDP_ROLE_MAP.split(/[\s,]+/).filter(Boolean).map((pair) => pair.split('=') as [string, string]))),
      source: e.LEGACY_IDP_SOURCE,
      timeoutMs: e.LEGACY_IDP_TIMEOUT_MS,
      breakerFailures: e.LEGACY_IDP_BREAKER_FAILURES,
      breakerOpenMs: e.LEGACY_IDP_BREAKER_OPEN_SECONDS * 1000,
    }),
  });
}

export type Config = ReturnType<typeof toConfig>;

/** Parses and validates the environment; throws a ServiceError naming every bad variable. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(source);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
    // One problem, one line (what a failed boot prints); several, one line each.
    const text = problems.length === 1 ? ` ${problems[0]}` : `\n  ${problems.join('\n  ')}`;
    throw new ServiceError('config_invalid', `invalid configuration:${text}`);
  }
  return toConfig(parsed.data);
}

function redisTopology(e: Env): RedisTopology | undefined {
  if (e.REDIS_URL) return { kind: 'single', url: e.REDIS_URL };
  if (e.REDIS_SENTINELS?.length) {
    return {
      kind: 'sentinel',
      sentinels: e.REDIS_SENTINELS,
      name: e.REDIS_SENTINEL_NAME!,
      password: e.REDIS_PASSWORD,
      sentinelPassword: e.REDIS_SENTINEL_PASSWORD,
    };
  }
  if (e.REDIS_CLUSTER_NODES?.length) return { kind: 'cluster', nodes: e.REDIS_CLUSTER_NODES, password: e.REDIS_PASSWORD };
  return undefined;
}
