// A password login with its defences around it, in the order they run:
// throttling verdict (src/security/throttle.ts), bounded hashing (the hash
// gate), the credential check, counters, one security event and one audit row
// per attempt. A throttled account answers exactly like a wrong password (and
// spends the same one hash verification), so throttling is no oracle.
// Whoever checks a password (the password grant today) calls this.
import { sha256 } from '../lib/crypto.ts';
import type { AuditLog } from '../security/audit.ts';
import type { SecurityEvents } from '../security/events.ts';
import { Overloaded, type HashGate } from '../security/hash-gate.ts';
import type { LoginThrottle } from '../security/throttle.ts';
import { ServiceError, StoreUnavailable } from '../errors.ts';
import type { Db } from '../store/postgres.ts';
import type { PasswordHasher } from './passwords.ts';
import { checkCredentials, normalizeEmail, type Account } from './users.ts';

/** Where an attempt comes from: the client, the end user's IP, the request id for the audit row. */
export type LoginSource = { clientId: string; ip: string; requestId: string | null };

/** The throttle's key for a username: a hash, so Redis never holds an email address. */
export function usernameKey(username: string): string {
  const normalized = normalizeEmail(username) ?? username.normalize('NFC').trim().toLowerCase();
  return sha256(normalized).slice(0, 32);
}

export type PasswordLoginDeps = {
  db: Db;
  hasher: PasswordHasher;
  throttle: LoginThrottle;
  gate: HashGate;
  events: SecurityEvents;
  audit: AuditLog;
};

export class PasswordLogin {
  readonly #deps: PasswordLoginDeps;

  constructor(deps: PasswordLoginDeps) {
    this.#deps = deps;
  }

  /**
   * The account for a correct password of an active user, else null (one
   * answer for every failure). Throws ServiceError rate_limited (429, too
   * many failures from this IP) or temporarily_unavailable (503: hash gate
   * full, or a store down).
   */
  async attempt(source: LoginSource, username: string, password: string): Promise<Account | null> {
    const { throttle, gate, events, hasher, db } = this.#deps;
    const ev = { clientId: source.clientId, ip: source.ip };
    const user = usernameKey(username);
    try {
      const verdict = await throttle.check(user, source.ip);
      if (verdict.kind === 'rate_limited') {
        events.emit('login.rate_limited', { ...ev, retryAfterSeconds: verdict.retryAfterSeconds });
        throw new ServiceError('rate_limited', 'too many failed logins from this address', { retryAfter: verdict.retryAfterSeconds });
      }
      if (verdict.kind === 'throttled') {
        await gate.run(() => hasher.verify(null, password));
        await throttle.throttledAttempt(source.ip);
        events.emit('login.throttled', { ...ev, scope: verdict.scope, retryAfterSeconds: verdict.retryAfterSeconds });
        return null;
      }
      const result = await gate.run(() => checkCredentials(db, hasher, username, password));
      await this.#audit(source, username, result);
      if (!result.account) {
        await throttle.failed(user, source.ip);
        events.emit('login.failed', ev);
        return null;
      }
      await throttle.succeeded(user, source.ip);
      events.emit('login.succeeded', { ...ev, accountId: result.account.accountId });
      return result.account;
    } catch (err) {
      if (err instanceof Overloaded) events.emit('login.shed', ev);
      else if (err instanceof StoreUnavailable) events.emit('login.unavailable', ev);
      throw err;
    }
  }

  async #audit(source: LoginSource, username: string, result: Awaited<ReturnType<typeof checkCredentials>>): Promise<void> {
    const meta = { clientId: source.clientId, ip: source.ip, requestId: source.requestId };
    if (result.account) {
      const id = result.account.accountId;
      await this.#deps.audit.record({ ...meta, type: 'login.success', actor: id, subject: id });
      return;
    }
    await this.#deps.audit.record({
      ...meta,
      type: 'login.failure',
      outcome: 'failure',
      reason: result.reason,
      subject: result.userId ?? null,
      // The attempted name helps spot credential stuffing; never the password.
      details: { username: username.slice(0, 320) },
    });
  }
}
