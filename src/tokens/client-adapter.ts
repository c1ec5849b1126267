// oidc-provider's read-only view of the clients in Postgres (RFC 7591
// metadata). Clients are managed by src/clients (admin API and CLI), never by
// oidc-provider itself.
import type { Db } from '../store/postgres.ts';
import { challengeRedirectUri } from './challenge-endpoint.ts';
import { MFA_GRANT_TYPES } from './mfa-grant.ts';
import { atBoundary, currentContext } from './oidc.ts';

type ClientRow = {
  id: string;
  secretHash: string;
  grantTypes: string[];
  scope: string;
  trustedGateway: boolean;
  sessionEpoch: string;
  allowedResources: string[];
  dpopBoundAccessTokens: boolean;
  firstParty: boolean;
};

export function toClientMetadata(row: ClientRow, issuer: string) {
  return {
    client_id: row.id,
    // Not the secret: its digest. provider.ts makes compareClientSecret hash what is presented.
    client_secret: row.secretHash,
    // The second-factor grants continue a password login: allowed with it.
    grant_types: [
      ...row.grantTypes,
      ...(row.grantTypes.includes('password') ? MFA_GRANT_TYPES : []),
      ...(row.firstParty ? ['authorization_code'] : []),
    ],
    // A first-party client gets authorization codes from the challenge
    // endpoint, exchanged by oidc-provider's authorization_code grant, which
    // needs the code flow registered (it is never run in a browser: /auth is closed).
    ...(row.firstParty
      ? { response_types: ['code'], redirect_uris: [challengeRedirectUri(issuer)] }
      : { response_types: [], redirect_uris: [] }),
    token_endpoint_auth_method: 'client_secret_basic',
    ...(row.scope ? { scope: row.scope } : {}),
    trusted_gateway: row.trustedGateway,
    // Read on every token request anyway: refresh compares the grant's stamp
    // with it, and resource indicators are checked against the list.
    session_epoch: row.sessionEpoch,
    allowed_resources: row.allowedResources,
    // RFC 9449 §5.2, enforced by oidc-provider's grants and the password grant.
    dpop_bound_access_tokens: row.dpopBoundAccessTokens,
    first_party: row.firstParty,
  };
}

/** The most a cached client row is used for (see the cache below). */
export const CLIENT_CACHE_MAX_AGE_MS = 2_000;
const CLIENT_CACHE_MAX_ENTRIES = 10_000;

/** Where each client row's current version is kept for every replica (Redis; src/tokens/redis-adapter.ts). */
export type ClientVersions = { clientVersion(clientId: string): Promise<string | null> };

// Every token request reads its client. With Redis, rows are cached in
// process under the version Redis holds for the client: each lookup reads
// the version (one GET, in the same network write as the client-
// authentication limit reads) and uses the cached row only while the
// version is unchanged and the entry younger than CLIENT_CACHE_MAX_AGE_MS.
// src/clients replaces the version after every change, so a change (a new
// secret, a new session epoch, a deletion) is seen by every replica's next
// request. If that write failed (Redis down: token requests fail with 503
// meanwhile, the lookup included), the age bound ends the old row's use
// at most CLIENT_CACHE_MAX_AGE_MS after it was read. Absent clients are not
// cached.
export class ClientAdapter {
  readonly #db: Db;
  readonly #issuer: string;
  readonly #versions: ClientVersions | undefined;
  readonly #cache = new Map<string, { row: ClientRow; version: string | null; until: number }>();
  // Per request: the row read started at client authentication (prefetch).
  readonly #early = new WeakMap<object, { id: string; row: Promise<ClientRow | null> }>();

  constructor(db: Db, issuer: string, versions?: ClientVersions) {
    this.#db = db;
    this.#issuer = issuer;
    this.#versions = versions;
  }

  /** Starts reading the row a request claims, for this request's lookup (src/tokens/provider.ts, doors). */
  prefetch(ctx: object, id: string): void {
    const row = this.#read(id);
    row.catch(() => undefined); // awaited, and its failure reported, by find
    this.#early.set(ctx, { id, row });
  }

  find(id: string) {
    return atBoundary(async () => {
      const ctx = currentContext();
      const early = ctx && this.#early.get(ctx);
      const row = await (early?.id === id ? early.row : this.#read(id));
      return row ? toClientMetadata(row, this.#issuer) : undefined;
    });
  }

  #read(id: string): Promise<ClientRow | null> {
    if (!this.#versions) return this.#fromDb(id);
    return this.#versions.clientVersion(id).then(async (version) => {
      const hit = this.#cache.get(id);
      if (hit && hit.version === version && hit.until > Date.now()) return hit.row;
      const row = await this.#fromDb(id);
      if (!row) {
        this.#cache.delete(id);
        return null;
      }
      if (this.#cache.size >= CLIENT_CACHE_MAX_ENTRIES) this.#cache.clear();
      // Under the version read before the row: a change in between retires it.
      this.#cache.set(id, { row, version, until: Date.now() + CLIENT_CACHE_MAX_AGE_MS });
      return row;
    });
  }

  // Prisma queries run when awaited: Promise.resolve starts this one now.
  #fromDb(id: string): Promise<ClientRow | null> {
    return Promise.resolve(this.#db.client.findUnique({ where: { id } }));
  }

  async upsert(): Promise<never> {
    throw new Error('clients are read-only for oidc-provider');
  }

  async destroy(): Promise<never> {
    throw new Error('clients are read-only for oidc-provider');
  }
}
