// Who may still hold a session: one durable truth, in Postgres.
//
// Every grant (one login, its refresh token family) records the stamp it was
// issued under: the account's session generation and the client's session
// epoch, read on the rows the login read anyway. Revoking bumps the
// generation (src/accounts/lifecycle.ts) or the epoch, or deletes the row
// (src/clients), in one transaction with the audit row; from that commit on,
// every older grant is dead:
//   - refresh compares the grant's stamp with the account row findAccount
//     reads and the client row client authentication reads (no extra query);
//   - a password login re-reads the generation after saving its grant;
//   - access tokens carry the stamp (claims `session_gen`, `client_epoch`),
//     which the admin API and the verifier's revocation hook compare with
//     Postgres (SessionTruth).
// Redis deletion of dead grants is clean-up, never what makes revocation true.
//
// oidc-provider keeps only its own fields of a Grant (IN_PAYLOAD), so the
// stamp travels beside it: the adapter wrapper below adds it to the stored
// payload and, on every read, remembers it for the rest of the request.
import type { Adapter } from 'oidc-provider';
import type { Db } from '../store/postgres.ts';
import { currentContext, type OidcContext } from './oidc.ts';

export type SessionStamp = Readonly<{ generation: number; clientEpoch: string }>;

/** Access token claims that carry the stamp. */
export const STAMP_CLAIMS = { generation: 'session_gen', clientEpoch: 'client_epoch' } as const;

type Stored = Record<string, unknown> & { sessionGeneration?: unknown; clientEpoch?: unknown };

// Per request: the stamp a login is issuing under, and the grant (id and
// stamp) this request has read or written.
const issuing = new WeakMap<object, SessionStamp>();
const grants = new WeakMap<object, { grantId: string; stamp: SessionStamp | undefined }>();

/** The password grant, before it saves its Grant: the stamp the login authenticated under. */
export function issueUnder(ctx: OidcContext, stamp: SessionStamp): void {
  issuing.set(ctx, stamp);
}

/** The stamp of the grant this request loaded or saved, if that is `grantId`. */
export function grantStampOf(ctx: OidcContext | undefined, grantId: string | undefined): SessionStamp | undefined {
  const seen = ctx && grants.get(ctx);
  return seen && grantId && seen.grantId === grantId ? seen.stamp : undefined;
}

function stampOf(payload: Stored): SessionStamp | undefined {
  const { sessionGeneration: generation, clientEpoch } = payload;
  return typeof generation === 'number' && typeof clientEpoch === 'string' ? { generation, clientEpoch } : undefined;
}

/**
 * Wraps the Grant adapter (Redis or development memory): a saved Grant gets
 * the issuing stamp, a read one leaves its stamp for findAccount and
 * extraTokenClaims. A grant saved without a stamp never passes a check.
 */
export function stampingGrants(inner: Adapter): Adapter {
  return {
    async upsert(id, payload, expiresIn) {
      const ctx = currentContext();
      const stamp = ctx && issuing.get(ctx);
      if (ctx) grants.set(ctx, { grantId: id, stamp });
      const stored = stamp ? { ...payload, sessionGeneration: stamp.generation, clientEpoch: stamp.clientEpoch } : payload;
      return inner.upsert(id, stored, expiresIn);
    },
    async find(id) {
      const payload = await inner.find(id);
      const ctx = currentContext();
      if (payload && ctx) grants.set(ctx, { grantId: id, stamp: stampOf(payload as Stored) });
      return payload;
    },
    findByUid: (uid) => inner.findByUid(uid),
    findByUserCode: (code) => inner.findByUserCode(code),
    consume: (id) => inner.consume(id),
    destroy: (id) => inner.destroy(id),
    revokeByGrantId: (grantId) => inner.revokeByGrantId(grantId),
  };
}

/** Does a grant issued under `stamp` still hold for this account row and client row? Pure. */
export function stampHolds(
  stamp: SessionStamp | undefined,
  account: { generation: number } | null | undefined,
  clientEpoch: string | undefined,
): boolean {
  return !!stamp && !!account && stamp.generation === account.generation && stamp.clientEpoch === clientEpoch;
}

/** The stamp as access token claims (none for a grant without one). */
export function stampClaims(stamp: SessionStamp | undefined): Record<string, unknown> {
  return stamp ? { [STAMP_CLAIMS.generation]: stamp.generation, [STAMP_CLAIMS.clientEpoch]: stamp.clientEpoch } : {};
}

/** The session an access token belongs to, as Postgres sees it now. */
export type LiveSession = { accountId: string; roles: string[]; clientId: string; clientResources: string[] };

/**
 * The truth for access tokens: the user exists and is active, the client
 * exists, and both still carry the stamp the token was issued under. Two
 * primary-key reads, in parallel. Used by the admin API on every request and
 * offered to the verifier's `isRevoked` hook (packages/verify).
 */
export class SessionTruth {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  async check(claims: Readonly<Record<string, unknown>>): Promise<LiveSession | null> {
    const { sub, client_id: clientId } = claims;
    const generation = claims[STAMP_CLAIMS.generation];
    const clientEpoch = claims[STAMP_CLAIMS.clientEpoch];
    if (typeof sub !== 'string' || typeof clientId !== 'string' || typeof generation !== 'number' || typeof clientEpoch !== 'string') {
      return null;
    }
    if (!UUID.test(sub)) return null;
    const [user, client] = await Promise.all([
      this.#db.user.findUnique({ where: { id: sub }, select: { status: true, roles: true, sessionGeneration: true } }),
      this.#db.client.findUnique({ where: { id: clientId }, select: { sessionEpoch: true, allowedResources: true } }),
    ]);
    if (!user || user.status !== 'active' || !client) return null;
    const holds = stampHolds({ generation, clientEpoch }, { generation: user.sessionGeneration }, client.sessionEpoch);
    return holds ? { accountId: sub, roles: user.roles, clientId, clientResources: client.allowedResources } : null;
  }

  /** A client_credentials token: its client still exists with the epoch the token carries. */
  async clientHolds(claims: Readonly<Record<string, unknown>>): Promise<boolean> {
    const { client_id: clientId } = claims;
    const clientEpoch = claims[STAMP_CLAIMS.clientEpoch];
    if (typeof clientId !== 'string' || typeof clientEpoch !== 'string') return false;
    const client = await this.#db.client.findUnique({ where: { id: clientId }, select: { sessionEpoch: true } });
    return !!client && client.sessionEpoch === clientEpoch;
  }

  /**
   * Does a login step taken under `generation` (e.g. the password step behind
   * an enroll-only mfa_token) still hold: the account active, its session
   * generation unchanged (no password change, reset or revocation since)?
   */
  async accountHolds(accountId: string, generation: number): Promise<boolean> {
    if (!UUID.test(accountId)) return false;
    const user = await this.#db.user.findUnique({ where: { id: accountId }, select: { status: true, sessionGeneration: true } });
    return !!user && user.status === 'active' && user.sessionGeneration === generation;
  }

  /** For the verifier's `isRevoked` hook: true unless the session still holds. */
  async isRevoked(claims: Readonly<Record<string, unknown>>): Promise<boolean> {
    return !(await this.check(claims));
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
