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

// OWASP's argon2id equivalence set (m=47104/t=1 ... m=7168/t=5) all spend at
// least this much memory × passes; below it a hash is cheaper than OWASP allows.
const ARGON2_MIN_COST_KIB_PASSES = 7168 * 5;

const schema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    HOST: z.string().min(1).default('127.0.0.1'),
    PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    ADMIN_PORT: z.coerce.number().int().min(0).max(65535).default(3001),
    ISSUER: optionalUrl,
    DATABASE_URL: optionalUrl,
    DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
    REDIS_URL: optionalUrl,
    REDIS_KEY_PREFIX: z.string().max(64).default('idp:'),
    REDIS_COMMAND_TIMEOUT_MS: z.coerce.number().int().min(50).max(10_000).default(1000),
    DATA_DIR: z.string().min(1).default('./data'),
    KEY_ENCRYPTION_KEY: z
      .string()
      .trim()
      .optional()
      .transform((v) => (v ? v : undefined)),
    SIGNING_ALG: z
      .string()
      .default('ES256')
      .refine((v) => v !== 'RS256', {
        message: 'RS256 is not allowed (OWASP ASVS 5.0 appendix C); use ES256, EdDSA or PS256',
      })
      .pipe(z.enum(['ES256', 'EdDSA', 'PS256'])),
    TOKEN_AUDIENCE: z.url().default('api://default'),
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
    ADMIN_BOOTSTRAP_EMAIL: z.string().trim().optional().transform((v) => (v ? v : undefined)),
    ADMIN_BOOTSTRAP_PASSWORD_FILE: z.string().trim().optional().transform((v) => (v ? v : undefined)),
    SMTP_URL: optionalUrl,
    MAIL_FROM: z.string().min(3).default('identity@localhost'),
    PASSWORD_RESET_URL: optionalUrl,
    PASSWORD_RESET_TTL: seconds.min(60).max(86_400).default(1800),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .superRefine((env, ctx) => {
    if (env.REFRESH_TOKEN_IDLE_TTL > env.REFRESH_TOKEN_ABSOLUTE_TTL) {
      ctx.addIssue({
        code: 'custom',
        path: ['REFRESH_TOKEN_IDLE_TTL'],
        message: 'must not exceed REFRESH_TOKEN_ABSOLUTE_TTL',
      });
    }
    if (env.ARGON2_MEMORY_KIB * env.ARGON2_TIME_COST < ARGON2_MIN_COST_KIB_PASSES) {
      ctx.addIssue({
        code: 'custom',
        path: ['ARGON2_MEMORY_KIB'],
        message: `ARGON2_MEMORY_KIB × ARGON2_TIME_COST must be at least ${ARGON2_MIN_COST_KIB_PASSES} (OWASP minimum)`,
      });
    }
    if (env.NODE_ENV === 'production') {
      for (const name of ['DATABASE_URL', 'REDIS_URL', 'KEY_ENCRYPTION_KEY', 'ISSUER'] as const) {
        if (!env[name]) ctx.addIssue({ code: 'custom', path: [name], message: 'is required when NODE_ENV=production' });
      }
    }
    if (!!env.ADMIN_BOOTSTRAP_EMAIL !== !!env.ADMIN_BOOTSTRAP_PASSWORD_FILE) {
      ctx.addIssue({
        code: 'custom',
        path: ['ADMIN_BOOTSTRAP_PASSWORD_FILE'],
        message: 'ADMIN_BOOTSTRAP_EMAIL and ADMIN_BOOTSTRAP_PASSWORD_FILE go together',
      });
    }
    if (env.KEY_ENCRYPTION_KEY && Buffer.from(env.KEY_ENCRYPTION_KEY, 'base64').length !== 32) {
      ctx.addIssue({
        code: 'custom',
        path: ['KEY_ENCRYPTION_KEY'],
        message: 'must be 32 bytes, base64-encoded (openssl rand -base64 32)',
      });
    }
  });

export type Config = Readonly<{
  env: 'development' | 'production' | 'test';
  host: string;
  port: number;
  adminPort: number;
  issuer: string;
  databaseUrl: string | undefined;
  databasePoolMax: number;
  redisUrl: string | undefined;
  redisKeyPrefix: string;
  redisCommandTimeoutMs: number;
  dataDir: string;
  keyEncryptionKey: Buffer | undefined;
  signingAlg: 'ES256' | 'EdDSA' | 'PS256';
  audience: string;
  scopes: readonly string[];
  accessTokenTtl: number;
  refreshTokenIdleTtl: number;
  refreshTokenAbsoluteTtl: number;
  argon2: Readonly<{ memoryCost: number; timeCost: number; parallelism: number }>;
  passwordPolicy: Readonly<{ minLength: number; composition: readonly ('upper' | 'lower' | 'digit' | 'special')[] }>;
  roles: readonly string[];
  registrationMode: 'closed' | 'open' | 'approval';
  adminBootstrap: Readonly<{ email: string; passwordFile: string }> | undefined;
  mail: Readonly<{ smtpUrl: string | undefined; from: string; resetUrl: string; resetTtl: number }>;
  logLevel: string;
}>;

/** Parses and validates the environment; throws a ServiceError naming every bad variable. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(source);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ServiceError('config_invalid', `invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data;
  return Object.freeze({
    env: e.NODE_ENV,
    host: e.HOST,
    port: e.PORT,
    adminPort: e.ADMIN_PORT,
    issuer: (e.ISSUER ?? `http://localhost:${e.PORT}`).replace(/\/$/, ''),
    databaseUrl: e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    redisUrl: e.REDIS_URL,
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    dataDir: e.DATA_DIR,
    keyEncryptionKey: e.KEY_ENCRYPTION_KEY ? Buffer.from(e.KEY_ENCRYPTION_KEY, 'base64') : undefined,
    signingAlg: e.SIGNING_ALG,
    audience: e.TOKEN_AUDIENCE,
    scopes: Object.freeze(e.SCOPES),
    accessTokenTtl: e.ACCESS_TOKEN_TTL,
    refreshTokenIdleTtl: e.REFRESH_TOKEN_IDLE_TTL,
    refreshTokenAbsoluteTtl: e.REFRESH_TOKEN_ABSOLUTE_TTL,
    argon2: Object.freeze({
      memoryCost: e.ARGON2_MEMORY_KIB,
      timeCost: e.ARGON2_TIME_COST,
      parallelism: e.ARGON2_PARALLELISM,
    }),
    passwordPolicy: Object.freeze({ minLength: e.PASSWORD_MIN_LENGTH, composition: Object.freeze(e.PASSWORD_COMPOSITION) }),
    roles: Object.freeze(e.ROLES),
    registrationMode: e.REGISTRATION_MODE,
    adminBootstrap:
      e.ADMIN_BOOTSTRAP_EMAIL && e.ADMIN_BOOTSTRAP_PASSWORD_FILE
        ? Object.freeze({ email: e.ADMIN_BOOTSTRAP_EMAIL, passwordFile: e.ADMIN_BOOTSTRAP_PASSWORD_FILE })
        : undefined,
    mail: Object.freeze({
      smtpUrl: e.SMTP_URL,
      from: e.MAIL_FROM,
      resetUrl: e.PASSWORD_RESET_URL ?? `${(e.ISSUER ?? `http://localhost:${e.PORT}`).replace(/\/$/, '')}/password/reset`,
      resetTtl: e.PASSWORD_RESET_TTL,
    }),
    logLevel: e.LOG_LEVEL,
  });
}
