// OAuth clients: stored in Postgres, secrets kept only as a SHA-256 digest.
// oidc-provider reads clients through ClientAdapter and compares secrets with
// `compareClientSecret`, which provider.ts points at `secretMatches`.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ServiceError } from '../errors.ts';
import type { Db } from '../store/postgres.ts';

export const GRANT_TYPES = ['password', 'refresh_token', 'client_credentials'] as const;
export type GrantType = (typeof GRANT_TYPES)[number];

const scopeToken = /^[\x21\x23-\x5B\x5D-\x7E]+$/; // RFC 6749 §3.3 scope-token

export const clientInput = z.object({
  id: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" or "-", at most 64, starting alphanumeric'),
  grantTypes: z.array(z.enum(GRANT_TYPES)).min(1),
  scopes: z.array(z.string().regex(scopeToken, 'not a valid scope token')).default([]),
  trustedGateway: z.boolean().default(false),
});
export type ClientInput = z.input<typeof clientInput>;

/** Throws validation_failed unless every scope is one of SCOPES. */
export function checkScopes(scopes: readonly string[], knownScopes: readonly string[], field = 'scopes'): void {
  const unknown = scopes.filter((s) => !knownScopes.includes(s));
  if (unknown.length) {
    throw new ServiceError('validation_failed', `unknown scope ${unknown.join(', ')}; add it to SCOPES first`, { field });
  }
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url');
}

export function secretMatches(storedHash: string | undefined, presented: string): boolean {
  if (!storedHash) return false;
  const a = Buffer.from(storedHash);
  const b = Buffer.from(hashSecret(presented));
  return a.length === b.length && timingSafeEqual(a, b);
}

export type ClientView = { client_id: string; grant_types: string[]; scope: string; trusted_gateway: boolean; created_at: string };

type ClientRow = { id: string; grantTypes: string[]; scope: string; trustedGateway: boolean; createdAt: Date };

const view = (row: ClientRow): ClientView => ({
  client_id: row.id,
  grant_types: row.grantTypes,
  scope: row.scope,
  trusted_gateway: row.trustedGateway,
  created_at: row.createdAt.toISOString(),
});

/** Creates a client; the returned secret is the only copy there will ever be. */
export async function createClient(
  db: Db,
  input: ClientInput,
  knownScopes: readonly string[],
): Promise<ClientView & { client_secret: string }> {
  const parsed = clientInput.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ServiceError('validation_failed', `${issue.path.join('.')}: ${issue.message}`, {
      field: String(issue.path[0] ?? ''),
    });
  }
  const { id, grantTypes, scopes, trustedGateway } = parsed.data;
  checkScopes(scopes, knownScopes);
  const secret = randomBytes(32).toString('base64url');
  try {
    const row = await db.client.create({
      data: { id, secretHash: hashSecret(secret), grantTypes: [...new Set(grantTypes)], scope: scopes.join(' '), trustedGateway },
    });
    return { ...view(row), client_secret: secret };
  } catch (err) {
    if ((err as { code?: string }).code === 'P2002') {
      throw new ServiceError('conflict', `client ${id} already exists`, { field: 'id' });
    }
    throw err;
  }
}

const notFound = (id: string) => new ServiceError('not_found', `no client ${id}`);
const missing = (id: string) => (err: { code?: string }) => {
  throw err.code === 'P2025' ? notFound(id) : err;
};

export async function listClients(db: Db): Promise<ClientView[]> {
  return (await db.client.findMany({ orderBy: { id: 'asc' } })).map(view);
}

export async function getClient(db: Db, id: string): Promise<ClientView> {
  const row = await db.client.findUnique({ where: { id } });
  if (!row) throw notFound(id);
  return view(row);
}

/** Changes grant types and/or scopes; takes effect at the client's next token request. */
export async function updateClient(
  db: Db,
  id: string,
  change: { grantTypes?: GrantType[]; scopes?: string[] },
  knownScopes: readonly string[],
): Promise<ClientView> {
  checkScopes(change.scopes ?? [], knownScopes, 'scope');
  const row = await db.client
    .update({
      where: { id },
      data: {
        ...(change.grantTypes ? { grantTypes: [...new Set(change.grantTypes)] } : {}),
        ...(change.scopes ? { scope: [...new Set(change.scopes)].join(' ') } : {}),
      },
    })
    .catch(missing(id));
  return view(row);
}

/** A new secret replaces the old one at once; it is returned this one time. */
export async function rotateClientSecret(db: Db, id: string): Promise<ClientView & { client_secret: string }> {
  const secret = randomBytes(32).toString('base64url');
  const row = await db.client.update({ where: { id }, data: { secretHash: hashSecret(secret) } }).catch(missing(id));
  return { ...view(row), client_secret: secret };
}

export async function deleteClient(db: Db, id: string): Promise<void> {
  await db.client.delete({ where: { id } }).catch(missing(id));
}

/** oidc-provider's view of a client (RFC 7591 metadata). */
export function toClientMetadata(row: { id: string; secretHash: string; grantTypes: string[]; scope: string; trustedGateway?: boolean }) {
  return {
    client_id: row.id,
    // Not the secret: its digest. compareClientSecret hashes what is presented.
    client_secret: row.secretHash,
    grant_types: row.grantTypes,
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    ...(row.scope ? { scope: row.scope } : {}),
    trusted_gateway: row.trustedGateway === true,
  };
}

/** Read-only oidc-provider adapter for the Client model, backed by Postgres. */
export class ClientAdapter {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  async find(id: string) {
    const row = await this.#db.client.findUnique({ where: { id } });
    return row ? toClientMetadata(row) : undefined;
  }

  // Clients are managed through the CLI and admin API, never by oidc-provider.
  async upsert(): Promise<never> {
    throw new Error('clients are read-only for oidc-provider');
  }

  async destroy(): Promise<never> {
    throw new Error('clients are read-only for oidc-provider');
  }
}
