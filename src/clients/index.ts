// OAuth clients: stored in Postgres, secrets kept only as a SHA-256 digest
// (a secret is 256 random bits, so a fast hash is enough). Every change is
// audited here, whoever makes it (admin API or CLI). oidc-provider reads
// clients through src/tokens/client-adapter.ts.
//
// Each client row carries a session epoch (a UUID) that its grants record:
// deleting the client, re-creating the same id (a fresh epoch) and
// rotate-secret with revoke_sessions leave every older grant dead
// (src/tokens/sessions.ts), committed with the audit row in one transaction.
import { z } from 'zod';
import { ServiceError } from '../errors.ts';
import { randomUUID } from 'node:crypto';
import { randomToken, safeEqual, sha256 } from '../lib/crypto.ts';
import type { Logger } from '../observability/log.ts';
import type { AuditLog, AuditMeta } from '../security/audit.ts';
import type { Db } from '../store/postgres.ts';

export const GRANT_TYPES = ['password', 'refresh_token', 'client_credentials'] as const;
export type GrantType = (typeof GRANT_TYPES)[number];

const scopeToken = /^[\x21\x23-\x5B\x5D-\x7E]+$/; // RFC 6749 §3.3 scope-token

/** What a client id may look like (so it is safe as a Redis key and in a log line). */
export const CLIENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

// User ids are UUIDs, and a client_credentials token's `sub` is the client
// id: a client id shaped like a UUID could equal a user's id, and a resource
// server would take the client for that user (RFC 9068 §5). Refused.
const UUID_SHAPED = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

export const clientInput = z.object({
  id: z
    .string()
    .regex(CLIENT_ID, 'letters, digits, ".", "_" or "-", at most 64, starting alphanumeric')
    .refine((id) => !UUID_SHAPED.test(id), 'must not look like a UUID (user ids are UUIDs, RFC 9068 §5)'),
  grantTypes: z.array(z.enum(GRANT_TYPES)).min(1),
  scopes: z.array(z.string().regex(scopeToken, 'not a valid scope token')).default([]),
  trustedGateway: z.boolean().default(false),
  /** May use the Authorization Challenge Endpoint (draft-ietf-oauth-first-party-apps). */
  firstParty: z.boolean().default(false),
  /** Resource indicators (RFC 8707) the client may request besides the default audience. */
  resources: z.array(z.string().max(2000)).max(16).default([]),
  /** RFC 9449 §5.2 `dpop_bound_access_tokens`: token requests without a DPoP proof are refused. */
  dpopBound: z.boolean().default(false),
});
export type ClientInput = z.input<typeof clientInput>;

/** Throws validation_failed unless every scope is one of SCOPES. */
export function checkScopes(scopes: readonly string[], knownScopes: readonly string[], field = 'scope'): void {
  const unknown = scopes.filter((s) => !knownScopes.includes(s));
  if (unknown.length) {
    throw new ServiceError('validation_failed', `unknown scope ${unknown.join(', ')}; add it to SCOPES first`, { field });
  }
}

/** Throws validation_failed unless every resource is one the service issues tokens for (besides the default). */
export function checkResources(resources: readonly string[], knownResources: readonly string[], field = 'resources'): void {
  const unknown = resources.filter((r) => !knownResources.includes(r));
  if (unknown.length) {
    throw new ServiceError('validation_failed', `unknown resource ${unknown.join(', ')}; allowed: ${knownResources.join(', ') || 'none'}`, {
      field,
    });
  }
}

/** Does the presented secret match the stored digest? Constant time. */
export function secretMatches(storedHash: string | undefined, presented: string): boolean {
  return !!storedHash && safeEqual(storedHash, sha256(presented));
}

export type ClientView = {
  client_id: string;
  grant_types: string[];
  scope: string;
  trusted_gateway: boolean;
  allowed_resources: string[];
  dpop_bound_access_tokens: boolean;
  first_party: boolean;
  created_at: string;
};

type ClientRow = {
  id: string;
  grantTypes: string[];
  scope: string;
  trustedGateway: boolean;
  allowedResources: string[];
  dpopBoundAccessTokens: boolean;
  firstParty: boolean;
  createdAt: Date;
};

const view = (row: ClientRow): ClientView => ({
  client_id: row.id,
  grant_types: row.grantTypes,
  scope: row.scope,
  trusted_gateway: row.trustedGateway,
  allowed_resources: row.allowedResources,
  dpop_bound_access_tokens: row.dpopBoundAccessTokens,
  first_party: row.firstParty,
  created_at: row.createdAt.toISOString(),
});

/** Creates a client (unaudited: Clients.create audits); the returned secret is the only copy there will ever be. */
export async function createClient(
  db: Db,
  input: ClientInput,
  knownScopes: readonly string[],
  knownResources: readonly string[] = [],
): Promise<ClientView & { client_secret: string }> {
  const parsed = clientInput.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ServiceError('validation_failed', `${issue.path.join('.')}: ${issue.message}`, {
      field: String(issue.path[0] ?? ''),
    });
  }
  const { id, grantTypes, scopes, trustedGateway, firstParty, resources, dpopBound } = parsed.data;
  checkScopes(scopes, knownScopes);
  checkResources(resources, knownResources);
  const secret = randomToken();
  try {
    // A new row gets a new session epoch (the column default): tokens of a
    // deleted client with the same id stay dead.
    const row = await db.client.create({
      data: {
        id,
        secretHash: sha256(secret),
        grantTypes: [...new Set(grantTypes)],
        scope: scopes.join(' '),
        trustedGateway,
        firstParty,
        allowedResources: [...new Set(resources)],
        dpopBoundAccessTokens: dpopBound,
      },
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

/**
 * Removes what the token store still holds for a client whose grants are
 * already dead by epoch (implemented in src/tokens; passed in).
 */
export type ClientSessionCleanup = {
  purgeClient(clientId: string): Promise<number>;
  /** Tells every replica's client cache that the row changed (a new version in Redis; src/tokens/client-adapter.ts). */
  clientChanged?(clientId: string): Promise<void>;
};

export type ClientsDeps = {
  db: Db;
  audit: AuditLog;
  knownScopes: readonly string[];
  /** Resource indicators a client may be allowed besides the default audience (ADMIN_AUDIENCE). */
  knownResources?: readonly string[];
  sessions?: ClientSessionCleanup;
  logger?: Logger;
};

/** Client administration; every change is audited here. */
export class Clients {
  readonly #db: Db;
  readonly #audit: AuditLog;
  readonly #deps: ClientsDeps;

  constructor(deps: ClientsDeps) {
    this.#db = deps.db;
    this.#audit = deps.audit;
    this.#deps = deps;
  }

  async list(): Promise<ClientView[]> {
    return (await this.#db.client.findMany({ orderBy: { id: 'asc' } })).map(view);
  }

  async get(id: string): Promise<ClientView> {
    return view(await this.#db.client.findUniqueOrThrow({ where: { id } }).catch(missing(id)));
  }

  async create(input: ClientInput, meta: AuditMeta): Promise<ClientView & { client_secret: string }> {
    const created = await this.#changing(input.id, () => createClient(this.#db, input, this.#deps.knownScopes, this.#deps.knownResources));
    const { grant_types, scope, trusted_gateway, allowed_resources, dpop_bound_access_tokens } = created;
    await this.#audit.record({
      ...meta,
      type: 'client.created',
      subject: created.client_id,
      details: { grant_types, scope, trusted_gateway, allowed_resources, dpop_bound_access_tokens },
    });
    return created;
  }

  /** Changes grant types, scopes and/or allowed resources; takes effect at the client's next token request. */
  async update(
    id: string,
    change: { grantTypes?: GrantType[]; scopes?: string[]; resources?: string[]; firstParty?: boolean; dpopBound?: boolean },
    meta: AuditMeta,
  ): Promise<ClientView> {
    checkScopes(change.scopes ?? [], this.#deps.knownScopes);
    checkResources(change.resources ?? [], this.#deps.knownResources ?? []);
    const row = await this.#changing(id, () => this.#db.client
      .update({
        where: { id },
        data: {
          ...(change.grantTypes ? { grantTypes: [...new Set(change.grantTypes)] } : {}),
          ...(change.scopes ? { scope: [...new Set(change.scopes)].join(' ') } : {}),
          ...(change.resources ? { allowedResources: [...new Set(change.resources)] } : {}),
          ...(change.dpopBound !== undefined ? { dpopBoundAccessTokens: change.dpopBound } : {}),
          ...(change.firstParty !== undefined ? { firstParty: change.firstParty } : {}),
        },
      })
      .catch(missing(id)));
    await this.#audit.record({
      ...meta,
      type: 'client.updated',
      subject: id,
      details: {
        grant_types: row.grantTypes,
        scope: row.scope,
        allowed_resources: row.allowedResources,
        first_party: row.firstParty,
        dpop_bound_access_tokens: row.dpopBoundAccessTokens,
      },
    });
    return view(row);
  }

  /**
   * A new secret replaces the old one at once; it is returned this one time.
   * The client's sessions survive unless `revokeSessions` (a new epoch).
   */
  async rotateSecret(id: string, meta: AuditMeta, opts: { revokeSessions?: boolean } = {}): Promise<ClientView & { client_secret: string }> {
    const secret = randomToken();
    const revokeSessions = opts.revokeSessions === true;
    const row = await this.#changing(id, () => this.#db.$atomic(async (tx) => {
      const updated = await tx.client
        .update({ where: { id }, data: { secretHash: sha256(secret), ...(revokeSessions ? { sessionEpoch: randomUUID() } : {}) } })
        .catch(missing(id));
      await this.#audit.recordIn(tx, { ...meta, type: 'client.secret_rotated', subject: id, details: { revoke_sessions: revokeSessions } });
      return updated;
    }));
    if (revokeSessions) await this.#cleanUp(id);
    return { ...view(row), client_secret: secret };
  }

  async delete(id: string, meta: AuditMeta): Promise<void> {
    await this.#changing(id, () => this.#db.$atomic(async (tx) => {
      await tx.client.delete({ where: { id } }).catch(missing(id));
      await this.#audit.recordIn(tx, { ...meta, type: 'client.deleted', subject: id });
    }));
    await this.#cleanUp(id);
  }

  // After a change commits, a new version for every replica's client cache
  // (src/tokens/client-adapter.ts). A replica reads the version before the
  // row, so a row read before the commit was cached under the version this
  // retires. Like the clean-up below, a failure (Redis down) is only logged:
  // the change stands in Postgres, replicas cannot serve token requests
  // while Redis is down, and no cached row outlives CLIENT_CACHE_MAX_AGE_MS.
  async #changing<T>(id: string, change: () => Promise<T>): Promise<T> {
    const result = await change();
    const sessions = this.#deps.sessions;
    if (sessions?.clientChanged && CLIENT_ID.test(id)) {
      await sessions.clientChanged(id).catch((err: unknown) => {
        this.#deps.logger?.warn({ err: { message: (err as Error).message }, subject: id }, 'client cache version not updated; cached rows expire on their own');
      });
    }
    return result;
  }

  // Committed already; see Accounts for why a failure is only logged.
  async #cleanUp(id: string): Promise<void> {
    await this.#deps.sessions?.purgeClient(id).catch((err: unknown) => {
      this.#deps.logger?.warn({ err: { message: (err as Error).message }, subject: id }, 'client session clean-up failed; the sessions are revoked');
    });
  }
}
