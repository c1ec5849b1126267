// The one guard around every password check (the password grant, the current
// password before a change, and whatever checks a password later), with its
// defences in the order they run:
//
//   1. the hash gate (src/security/hash-gate.ts): a slot, or 503 at once,
//      before any other work;
//   2. the throttle's reservation (src/security/throttle.ts): per source,
//      per username+source, per username from strangers; 429 or "throttled";
//   3. the credential check (for an unknown user during a trickle migration,
//      the legacy provider's, see ./legacy-idp.ts), or for a throttled
//      attempt one dummy hash, so that it answers exactly like a wrong
//      password, at the same cost;
//   4. settling the reservation, one security event and one audit row.
//
// Usernames never reach a log line, and the audit row of a failure keeps
// only a keyed hash of the attempted name (or, when it names an account, the
// account's own normalized email): a password typed into the username field
// is not stored.
import { keyedHash, sha256 } from '../lib/crypto.ts';
import type { AuditLog } from '../security/audit.ts';
import { ipKey } from '../security/ip-key.ts';
import type { LoginVia, SecurityEvents } from '../security/events.ts';
import { Overloaded, type HashGate } from '../security/hash-gate.ts';
import type { LoginThrottle } from '../security/throttle.ts';
import { ServiceError, StoreUnavailable } from '../errors.ts';
import type { Db } from '../store/postgres.ts';
import { fromLegacyIdp, type LegacyIdp } from './legacy-idp.ts';
import type { PasswordHasher } from './passwords.ts';
import { checkCredentials, findLoginUser, normalizeEmail, type Account, type CredentialCheck, type UncheckableUser } from './users.ts';

/** Where an attempt comes from: the client, the end user's IP, the request id for the audit row. */
export type LoginSource = { clientId: string | null; ip: string; requestId: string | null };

/** A username as the throttle and the audit see it: NFC, trimmed, lower-cased. */
function normalizeUsername(username: string): string {
  return normalizeEmail(username) ?? username.normalize('NFC').trim().toLowerCase();
}

/** The throttle's key for a username: a hash, so Redis never holds an email address. */
export function usernameKey(username: string): string {
  return sha256(normalizeUsername(username)).slice(0, 32);
}

/** The key of the audit table's username hashes (derive it from the KEK: see deriveKey). */
export const AUDIT_USERNAME_KEY_PURPOSE = 'identity audit usernames';

export type PasswordLoginDeps = {
  db: Db;
  hasher: PasswordHasher;
  throttle: LoginThrottle;
  gate: HashGate;
  events: SecurityEvents;
  audit: AuditLog;
  /** Per-source limits count an IPv6 address as this prefix. */
  ipv6PrefixBits: number;
  /** HMAC key for attempted usernames in the audit table. */
  auditKey: Buffer;
  /** Trickle migration from a legacy identity provider, when configured; `roles` are the configured roles. */
  legacy?: { idp: LegacyIdp; roles: readonly string[] };
};

/** What the check behind the guard found: the account it proved, or nothing. */
// `recorded`: the audit row of a success, still being written.
export type Checked<T> = { accountId: string; value: T; recorded?: Promise<void> } | null;

export class PasswordLogin {
  readonly #deps: PasswordLoginDeps;

  constructor(deps: PasswordLoginDeps) {
    this.#deps = deps;
  }

  /**
   * The password grant: the account for a correct password of an active
   * user, else null (one answer for every failure, throttling included).
   * Throws ServiceError rate_limited (429, too many failures from this
   * source) or temporarily_unavailable (503: hash gate full, or a store down).
   */
  attempt(source: LoginSource, username: string, password: string): Promise<Account | null> {
    // The user row is read while the throttle reserves (both before the
    // hash); the success's audit row is written while the reservation
    // settles. Both are awaited before the answer. Trickle migration
    // (./legacy-idp.ts) decides for a user this service cannot check.
    return this.#guarded(
      'token',
      source,
      usernameKey(username),
      () => this.#deps.hasher.verify(null, password),
      async (found) => {
        const { db, hasher, legacy } = this.#deps;
        const elsewhere = legacy && ((user: UncheckableUser) => fromLegacyIdp({ db, hasher, ...legacy }, user, username, password));
        const result = await checkCredentials(db, hasher, username, password, found, elsewhere);
        if (!result.account) {
          await this.#auditLogin(source, username, result);
          return null;
        }
        return { accountId: result.account.accountId, value: result.account, recorded: this.#auditLogin(source, username, result) };
      },
      () => findLoginUser(this.#deps.db, username),
    );
  }

  /**
   * Re-authentication of a signed-in account (its current password before a
   * change): true when right; false when wrong OR throttled, which the caller
   * must answer alike. Same limits, counters and errors as `attempt`.
   * `action`: the audit type a wrong password is recorded under (the action it refused).
   */
  async confirm(
    source: LoginSource,
    account: { id: string; email: string; passwordHash: string | null },
    password: string,
    action: 'password.changed' | 'mfa.disabled' = 'password.changed',
  ): Promise<boolean> {
    const dummy = () => this.#deps.hasher.verify(null, password);
    const checked = await this.#guarded('password_change', source, usernameKey(account.email), dummy, async () => {
      if (await this.#deps.hasher.verify(account.passwordHash, password)) return { accountId: account.id, value: true };
      await this.#deps.audit.record({
        actor: account.id,
        clientId: source.clientId,
        ip: source.ip,
        requestId: source.requestId,
        type: action,
        outcome: 'failure',
        reason: 'bad_password',
        subject: account.id,
      });
      return null;
    });
    return checked === true;
  }

  /**
   * A second factor (src/accounts/mfa.ts) of the account with this email:
   * the same counters as its password (a wrong code counts like a wrong
   * password; throttled answers like wrong), the same errors.
   */
  secondFactor<T>(source: LoginSource, email: string, check: () => Promise<Checked<T>>): Promise<T | null> {
    return this.#guarded('mfa', source, usernameKey(email), async () => undefined, check);
  }

  /**
   * `dummy`: what a throttled attempt spends instead of the check (a
   * password's hash, so it costs the same). `prepare`: a read started beside
   * the throttle's reservation, handed to `check`.
   */
  async #guarded<T, P = undefined>(
    via: LoginVia,
    source: LoginSource,
    user: string,
    dummy: () => Promise<unknown>,
    check: (prepared: Promise<P>) => Promise<Checked<T>>,
    prepare?: () => Promise<P>,
  ): Promise<T | null> {
    const { throttle, gate, events } = this.#deps;
    const ev = { clientId: source.clientId, ip: source.ip, via };
    try {
      // The gate comes first and is synchronous: under a flood, a login is
      // shed before it costs a Redis or Postgres round trip.
      return await gate.run(async () => {
        const prepared = prepare ? prepare() : Promise.resolve(undefined as P);
        prepared.catch(() => undefined); // unused when the attempt is refused; else awaited by check
        const reservation = await throttle.reserve(user, ipKey(source.ip, this.#deps.ipv6PrefixBits));
        const { verdict } = reservation;
        if (verdict.kind === 'rate_limited') {
          events.emit('login.rate_limited', { ...ev, retryAfterSeconds: verdict.retryAfterSeconds });
          throw new ServiceError('rate_limited', 'too many failed logins from this address', { retryAfter: verdict.retryAfterSeconds });
        }
        if (verdict.kind === 'throttled') {
          await dummy(); // the same cost as a real check
          events.emit('login.throttled', { ...ev, scope: verdict.scope, retryAfterSeconds: verdict.retryAfterSeconds });
          return null;
        }
        let checked: Checked<T>;
        try {
          checked = await check(prepared);
        } catch (err) {
          // Not a failed guess (Postgres down, a bug): the counters must not hold it against the user.
          await reservation.cancelled().catch(() => {});
          throw err;
        }
        if (!checked) {
          await reservation.failed();
          events.emit('login.failed', ev);
          return null;
        }
        await Promise.all([reservation.succeeded(), checked.recorded]);
        events.emit('login.succeeded', { ...ev, accountId: checked.accountId });
        return checked.value;
      });
    } catch (err) {
      if (err instanceof Overloaded) events.emit('login.shed', ev);
      else if (err instanceof StoreUnavailable) events.emit('login.unavailable', ev);
      throw err;
    }
  }

  async #auditLogin(source: LoginSource, username: string, result: CredentialCheck): Promise<void> {
    const meta = { clientId: source.clientId, ip: source.ip, requestId: source.requestId };
    if (result.account) {
      const id = result.account.accountId;
      await this.#deps.audit.record({ ...meta, type: 'login.success', actor: id, subject: id });
      return;
    }
    // The attempted name helps spot credential stuffing, but it may be a
    // password typed into the wrong field: keep the account's own address
    // when it names one, else only a keyed hash (compare a suspect name by
    // hashing it with the same key).
    const attempted = normalizeUsername(username);
    await this.#deps.audit.record({
      ...meta,
      type: 'login.failure',
      outcome: 'failure',
      reason: result.reason,
      subject: result.userId ?? null,
      details: result.userId ? { username: attempted } : { username_hmac: keyedHash(this.#deps.auditKey, attempted) },
    });
  }
}
