// OAuth clients: stored in Postgres, secrets kept only as a SHA-256 digest
// (a secret is 256 random bits, so a fast hash is enough). Every change is
// audited here, whoever makes it (admin API or CLI). oidc-provider reads
// clients through src/tokens/client-adapter.ts.
import { z } from 'zod';
import { ServiceError } from '../errors.ts';
import { randomToken, safeEqual, sha256 } from '../lib/crypto.ts';
import type { AuditLog, AuditMeta } from '../security/audit.ts';
import type { Db } from '../store/postgres.ts';

export const GRANT_TYPES = ['password', 'refresh_token', 'client_credentials'] as const;
export type GrantType = (typeof GRANT_TYPES)[number];

const scopeToken = /^[\x21\x23-\x5B\x5D-\x7E]+$/; // RFC 6749 §3.3 scope-token

/** What a client id may look like (so it is safe as a Redis key and in a log line). */
export const CLIENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const clientInput = z.object({
  id: z.string().regex(CLIENT_ID, 'letters, digits, ".", "_" or "-", at most 64, starting alphanumeric'),
  grantTypes: z.array(z.enum(GRANT_TYPES)).min(1),
  scopes: z.array(z.string().regex(scopeToken, 'not a valid scope token')).default([]),
  trustedGateway: z.boolean().default(false),
});
export type ClientInput = z.input<typeof clientInput>;

/** Throws validation_failed unless every scope is one of SCOPES. */
export function checkScopes(scopes: readonly string[], knownScopes: readonly string[], field = 'scope'): void {
  const unknown = scopes.filter((s) => !knownScopes.includes(s));
  if (unknown.length) {
    throw new ServiceError('validation_failed', `unknown scope ${unknown.join(', ')}; add it to SCOPES first`, { field });
  }
}

/** Does the presented secret match the stored digest? Constant time. */
export function secretMatches(storedHash: string | undefined, presented: string): boolean {
  return !!storedHash && safeEqual(storedHash, sha256(presented));
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

/** Creates a client (unaudited: Clients.create audits); the returned secret is the only copy there will ever be. */
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
  const secret = randomToken();
  try {
    const row = await db.client.create({
      data: { id, secretHash: sha256(secret), grantTypes: [...new Set(grantTypes)], scope: scopes.join(' '), trustedGateway },
    });
    return { ...view(row), client_secret: secret };
  } catch (err) {
    if ((err as { code?: string }).code === 'P2002') {
      throw new ServiceError('conflict', `client ${id} already exists`, { field: 'id' });
    }
    throw err;
  }
}

const missing = (id: string) => (err: { code?: string }) => {
  throw err.code === 'P2025' ? new ServiceError('not_found', `no client ${id}`) : err;
};

/** Client administration; every change is audited here. */
export class Clients {
  readonly #db: Db;
  readonly #audit: AuditLog;
  readonly #knownScopes: readonly string[];

  constructor(deps: { db: Db; audit: AuditLog; knownScopes: readonly string[] }) {
    this.#db = deps.db;
    this.#audit = deps.audit;
    this.#knownScopes = deps.knownScopes;
  }

  async list(): Promise<ClientView[]> {
    return (await this.#db.client.findMany({ orderBy: { id: 'asc' } })).map(view);
  }

  async get(id: string): Promise<ClientView> {
    return view(await this.#db.client.findUniqueOrThrow({ where: { id } }).catch(missing(id)));
  }

  async create(input: ClientInput, meta: AuditMeta): Promise<ClientView & { client_secret: string }> {
    const created = await createClient(this.#db, input, this.#knownScopes);
    const { grant_types, scope, trusted_gateway } = created;
    await this.#audit.record({ ...meta, type: 'client.created', subject: created.client_id, details: { grant_types, scope, trusted_gateway } });
    return created;
  }

  /** Changes grant types and/or scopes; takes effect at the client's next token request. */
  async update(id: string, change: { grantTypes?: GrantType[]; scopes?: string[] }, meta: AuditMeta): Promise<ClientView> {
    checkScopes(change.scopes ?? [], this.#knownScopes);
    const row = await this.#db.client
      .update({
        where: { id },
        data: {
          ...(change.grantTypes ? { grantTypes: [...new Set(change.grantTypes)] } : {}),
          ...(change.scopes ? { scope: [...new Set(change.scopes)].join(' ') } : {}),
        },
      })
      .catch(missing(id));
    await this.#audit.record({ ...meta, type: 'client.updated', subject: id, details: { grant_types: row.grantTypes, scope: row.scope } });
    return view(row);
  }

  /** A new secret replaces the old one at once; it is returned this one time. */
  async rotateSecret(id: string, meta: AuditMeta): Promise<ClientView & { client_secret: string }> {
    const secret = randomToken();
    const row = await this.#db.client.update({ where: { id }, data: { secretHash: sha256(secret) } }).catch(missing(id));
    await this.#audit.record({ ...meta, type: 'client.secret_rotated', subject: id });
    return { ...view(row), client_secret: secret };
  }

  async delete(id: string, meta: AuditMeta): Promise<void> {
    await this.#db.client.delete({ where: { id } }).catch(missing(id));
    await this.#audit.record({ ...meta, type: 'client.deleted', subject: id });
  }
}
