// What each export format holds and how it maps onto a user here. Each
// source splits its file into records (a line or an array element, numbered
// from 1) and maps one record; ./import.ts validates and writes them.
//
//                 email            verified          disabled             roles                       password hash
//   ndjson        email            (true)            status: "disabled"   roles (must be configured)  password_hash
//   keycloak      email            emailVerified     enabled: false       realmRoles + groups' last   credentials[type=password]
//                                                                         path segment                (pbkdf2-sha256/-sha512, argon2, bcrypt)
//   auth0         email            email_verified    blocked: true        app_metadata.roles          passwordHash (bcrypt, from support)
//   firebase      email            emailVerified     disabled: true       customAttributes.roles      passwordHash + salt + --hash-config
//
// Vendor roles go through the role map (--role-map source=here,...) and are
// then kept only if they are configured roles (ROLES); others are dropped,
// since vendors add their own (Keycloak's default-roles-<realm>, offline_access).
import { z } from 'zod';
import { ServiceError } from '../errors.ts';
import { firebaseHash, type FirebaseHashConfig } from './hash-schemes/scrypt.ts';
import type { UserStatus } from './users.ts';

export const IMPORT_SOURCES = ['ndjson', 'keycloak', 'auth0', 'firebase'] as const;
export type ImportSource = (typeof IMPORT_SOURCES)[number];

/** A record that cannot be imported: reported with its field, never written. */
export class RecordError extends Error {
  readonly field: string;
  readonly code: 'validation_failed' | 'conflict';
  constructor(field: string, message: string, code: 'validation_failed' | 'conflict' = 'validation_failed') {
    super(message);
    this.field = field;
    this.code = code;
  }
}

/** One user as a source describes it, before the shared checks. */
export type SourceRecord = {
  email: string | undefined;
  roles: string[];
  status: UserStatus;
  emailVerified: boolean;
  passwordHash?: string | null;
  /** The field to blame for a refused hash (default password_hash). */
  hashField?: string;
};

/** What a source's records need beyond themselves: Firebase's project hash parameters. */
export type SourceContext = { firebase?: FirebaseHashConfig };

type Source = {
  /** How records are numbered in reports: NDJSON by line, JSON documents by array position. */
  unit: 'line' | 'record';
  records(text: string): { ref: number; value: unknown }[];
  map(value: unknown, context: SourceContext): SourceRecord;
};

const fileError = (message: string) => new ServiceError('validation_failed', message, { field: 'file' });

function ndjsonRecords(text: string) {
  return text
    .split(/\r?\n/)
    .map((line, i) => ({ ref: i + 1, value: line }))
    .filter((r) => r.value.trim());
}

function parseLine(line: unknown): unknown {
  try {
    return JSON.parse(line as string);
  } catch {
    throw new RecordError('line', 'not a JSON object');
  }
}

/** Parses a record with `schema`, naming the first offending field. */
function parseWith<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(',') : 'line');
  throw new RecordError(field, issue.message);
}

const ndjsonLine = z.strictObject({
  email: z.string().max(320),
  roles: z.array(z.string()).max(64).default([]),
  status: z.enum(['pending', 'active', 'disabled']).default('active'),
  email_verified: z.boolean().default(true),
  password_hash: z.string().max(1024).nullable().optional(),
});

const ndjson: Source = {
  unit: 'line',
  records: ndjsonRecords,
  map(value) {
    const r = parseWith(ndjsonLine, parseLine(value));
    return { email: r.email, roles: r.roles, status: r.status, emailVerified: r.email_verified, passwordHash: r.password_hash };
  },
};

// Auth0: the Management API's export job writes one JSON object a line with
// the fields asked for; password hashes are not in it, but Auth0 support
// sends them on request as NDJSON with `passwordHash` (bcrypt). Other fields are ignored.
const auth0Line = z.object({
  email: z.string().max(320).optional(),
  email_verified: z.boolean().optional(),
  blocked: z.boolean().optional(),
  app_metadata: z.object({ roles: z.array(z.string()).max(64).optional() }).passthrough().optional(),
  passwordHash: z.string().max(1024).nullable().optional(),
});

const auth0: Source = {
  unit: 'line',
  records: ndjsonRecords,
  map(value) {
    const r = parseWith(auth0Line, parseLine(value));
    return {
      email: r.email,
      roles: r.app_metadata?.roles ?? [],
      status: r.blocked ? 'disabled' : 'active',
      emailVerified: r.email_verified ?? false,
      passwordHash: r.passwordHash,
      hashField: 'passwordHash',
    };
  },
};

/** A JSON document's user array (`{users: [...]}`, or the array itself). */
function jsonUsers(text: string, what: string) {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw fileError(`not a JSON document (${what})`);
  }
  const users = Array.isArray(doc) ? doc : (doc as { users?: unknown } | null)?.users;
  if (!Array.isArray(users)) throw fileError(`no "users" array (${what})`);
  return users.map((value, i) => ({ ref: i + 1, value }));
}

// Keycloak: `kc.sh export --realm R --users realm_file` (or --users
// different_files) writes users with their credentials; each password
// credential carries its hash as two JSON strings.
const keycloakUser = z.object({
  email: z.string().max(320).optional(),
  emailVerified: z.boolean().optional(),
  enabled: z.boolean().optional(),
  realmRoles: z.array(z.string()).max(256).optional(),
  groups: z.array(z.string()).max(256).optional(),
  credentials: z.array(z.object({ type: z.string(), secretData: z.string().optional(), credentialData: z.string().optional() }).passthrough()).optional(),
});
const keycloakSecret = z.object({ value: z.string().max(1024), salt: z.string().max(256).optional() });
const keycloakData = z.object({
  hashIterations: z.number().int().optional(),
  algorithm: z.string(),
  additionalParameters: z.record(z.string(), z.array(z.string())).optional(),
});

const unpadded = (b64: string) => Buffer.from(b64, 'base64').toString('base64').replace(/=+$/, '');

/** A Keycloak password credential as a hash string this service reads. */
export function keycloakHash(credential: { secretData?: string; credentialData?: string }): string {
  let secret: z.infer<typeof keycloakSecret>, data: z.infer<typeof keycloakData>;
  try {
    secret = keycloakSecret.parse(JSON.parse(credential.secretData ?? ''));
    data = keycloakData.parse(JSON.parse(credential.credentialData ?? ''));
  } catch {
    throw new RecordError('credentials', 'secretData/credentialData are not a Keycloak password credential');
  }
  const param = (key: string) => data.additionalParameters?.[key]?.[0];
  const salt = unpadded(secret.salt ?? '');
  const value = unpadded(secret.value);
  switch (data.algorithm) {
    case 'pbkdf2-sha256':
    case 'pbkdf2-sha512':
      return `$${data.algorithm}$i=${data.hashIterations},l=${Buffer.from(value, 'base64').length}$${salt}$${value}`;
    case 'argon2': {
      const version = param('version') === '1.0' ? 16 : 19;
      return `$argon2${param('type') ?? 'id'}$v=${version}$m=${param('memory')},t=${data.hashIterations},p=${param('parallelism') ?? 1}$${salt}$${value}`;
    }
    case 'bcrypt': // the community bcrypt provider stores the whole crypt string
      return secret.value;
    default:
      throw new RecordError('credentials', `Keycloak hash algorithm "${data.algorithm}" is not supported`);
  }
}

const keycloak: Source = {
  unit: 'record',
  records: (text) => jsonUsers(text, 'a Keycloak realm export'),
  map(value) {
    const u = parseWith(keycloakUser, value);
    const password = u.credentials?.find((c) => c.type === 'password');
    return {
      email: u.email,
      roles: [...(u.realmRoles ?? []), ...(u.groups ?? []).map((path) => path.split('/').filter(Boolean).at(-1) ?? path)],
      status: u.enabled === false ? 'disabled' : 'active',
      emailVerified: u.emailVerified ?? false,
      passwordHash: password ? keycloakHash(password) : null,
      hashField: 'credentials',
    };
  },
};

// Firebase: `firebase auth:export users.json --format=json --project P`, and
// the project's password hash parameters (console → Authentication → Users →
// ⋮ → Password hash parameters), as JSON or as the console shows them.
const firebaseUser = z.object({
  email: z.string().max(320).optional(),
  emailVerified: z.boolean().optional(),
  disabled: z.boolean().optional(),
  passwordHash: z.string().max(1024).optional(),
  salt: z.string().max(256).optional(),
  customAttributes: z.string().max(4096).optional(),
});
const firebaseConfig = z.object({
  algorithm: z.literal('SCRYPT'),
  base64_signer_key: z.base64(),
  base64_salt_separator: z.base64(),
  rounds: z.coerce.number().int().min(1).max(32),
  mem_cost: z.coerce.number().int().min(1).max(24),
});

/** Firebase's hash config, from `{hash_config: {...}}` / `{...}` JSON or the console's `key: value,` text. */
export function parseFirebaseConfig(text: string): FirebaseHashConfig {
  let raw: unknown;
  try {
    const doc = JSON.parse(text) as { hash_config?: unknown };
    raw = doc.hash_config ?? doc;
  } catch {
    raw = Object.fromEntries([...text.matchAll(/(\w+)\s*:\s*([^,\s}]+)/g)].map((m) => [m[1], m[2]]));
  }
  const parsed = firebaseConfig.safeParse(raw);
  if (!parsed.success) throw new ServiceError('validation_failed', `--hash-config: not Firebase's SCRYPT hash parameters (${parsed.error.issues[0]!.path.join('.')})`, { field: 'hash-config' });
  const c = parsed.data;
  return { signerKey: Buffer.from(c.base64_signer_key, 'base64'), saltSeparator: Buffer.from(c.base64_salt_separator, 'base64'), rounds: c.rounds, memCost: c.mem_cost };
}

const firebase: Source = {
  unit: 'record',
  records: (text) => jsonUsers(text, 'a `firebase auth:export` file'),
  map(value, context) {
    const u = parseWith(firebaseUser, value);
    let roles: string[] = [];
    if (u.customAttributes) {
      try {
        const claims = JSON.parse(u.customAttributes) as { roles?: unknown };
        roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : [];
      } catch {
        throw new RecordError('customAttributes', 'not a JSON object');
      }
    }
    let passwordHash: string | null = null;
    if (u.passwordHash) {
      const config = context.firebase;
      if (!config) throw new RecordError('passwordHash', 'a Firebase password hash needs --hash-config (the project\'s password hash parameters)');
      passwordHash = firebaseHash(config, u.salt ?? '', u.passwordHash);
    }
    return { email: u.email, roles, status: u.disabled ? 'disabled' : 'active', emailVerified: u.emailVerified ?? false, passwordHash, hashField: 'passwordHash' };
  },
};

export const SOURCES: Record<ImportSource, Source> = { ndjson, keycloak, auth0, firebase };
