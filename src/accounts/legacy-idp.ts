// Trickle migration: a password login that names a user this service does not
// know (or one imported without a hash) is checked against the legacy
// identity provider; when it says yes, the user is created here with an
// argon2id hash of that password and answered normally, and never asks the
// legacy provider again.
//
// Two ways to ask (LEGACY_IDP_MODE):
//   password_grant  the provider's OAuth password grant (Keycloak's direct
//                   grant, Auth0's ROPG): POST token endpoint with client credentials;
//                   200 = right password, 400/401 invalid_grant = wrong one;
//   hook            POST LEGACY_IDP_HOOK_URL {username, password} with
//                   `Authorization: Bearer LEGACY_IDP_HOOK_SECRET` → {valid, profile}.
// Anything else (timeout, refused connection, 5xx, a redirect, garbage, a
// client error) is an outage: 503 temporarily_unavailable, never a created
// user; LEGACY_IDP_BREAKER_FAILURES outages in a row open a circuit breaker
// that answers 503 at once for LEGACY_IDP_BREAKER_OPEN_SECONDS. Users already
// here never reach this code, so an outage does not touch them.
//
// It runs inside the login guard (src/accounts/login.ts): the hash gate and
// the throttle come first. Every unknown user costs the same legacy call, so
// timing does not tell which addresses exist here. The password never reaches
// a log; the provider's tokens are read for claims and dropped.
import { decodeJwt } from 'jose';
import { ServiceError } from '../errors.ts';
import type { Config } from '../config/index.ts';
import type { Db } from '../store/postgres.ts';
import type { PasswordHasher } from './passwords.ts';
import { checkCredentials, normalizeEmail, type CredentialCheck, type UncheckableUser } from './users.ts';

export type LegacyProfile = { email?: string; emailVerified?: boolean; roles: string[] };
export type LegacyVerdict = { valid: false } | { valid: true; profile: LegacyProfile };
export type LegacyOutcome = 'migrated' | 'invalid' | 'unavailable' | 'circuit_open';

/** 503 temporarily_unavailable: the legacy provider did not give a usable answer. */
export class LegacyIdpUnavailable extends ServiceError {
  constructor(retryAfter: number) {
    super('temporarily_unavailable', 'the legacy identity provider is unavailable, try again later', { retryAfter });
    this.name = 'LegacyIdpUnavailable';
  }
}

/** The key in service_settings whose presence ends the trickle phase. */
export const TRICKLE_ENDED = 'legacy_idp.ended';

class Outage extends Error {}

/** Claim at a dotted path (`realm_access.roles`) as a list of strings. */
function claimList(claims: Record<string, unknown>, path: string): string[] {
  let value: unknown = claims;
  for (const part of path.split('.')) value = value && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined;
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

export class LegacyIdp {
  readonly #config: Config['legacyIdp'];
  readonly #db: Db;
  readonly #onOutcome: (outcome: LegacyOutcome) => void;
  #failures = 0;
  #openUntil = 0;

  constructor(config: Config['legacyIdp'], db: Db, onOutcome: (outcome: LegacyOutcome) => void = () => {}) {
    this.#config = config;
    this.#db = db;
    this.#onOutcome = onOutcome;
  }

  get source(): string {
    return this.#config.source;
  }

  get roleMap(): Readonly<Record<string, string>> {
    return this.#config.roleMap;
  }

  /** Configured, and the trickle phase not ended (`identity users trickle-end`, durable for every replica). */
  async active(): Promise<boolean> {
    if (this.#config.mode === 'off') return false;
    return !(await this.#db.serviceSetting.findUnique({ where: { key: TRICKLE_ENDED }, select: { key: true } }));
  }

  /** Asks the legacy provider; throws LegacyIdpUnavailable when it gives no usable answer. */
  async verify(username: string, password: string): Promise<LegacyVerdict> {
    const retryAfter = Math.ceil(this.#config.breakerOpenMs / 1000);
    if (Date.now() < this.#openUntil) {
      this.#onOutcome('circuit_open');
      throw new LegacyIdpUnavailable(Math.ceil((this.#openUntil - Date.now()) / 1000));
    }
    let verdict: LegacyVerdict;
    try {
      verdict = this.#config.mode === 'hook' ? await this.#hook(username, password) : await this.#passwordGrant(username, password);
    } catch {
      // Whatever went wrong (its message may quote the request): counted, not logged with details.
      if (++this.#failures >= this.#config.breakerFailures) {
        this.#openUntil = Date.now() + this.#config.breakerOpenMs;
        this.#failures = this.#config.breakerFailures - 1; // half-open: one more failure reopens it
      }
      this.#onOutcome('unavailable');
      throw new LegacyIdpUnavailable(retryAfter);
    }
    this.#failures = 0;
    this.#onOutcome(verdict.valid ? 'migrated' : 'invalid');
    return verdict;
  }

  async #post(url: string, init: { headers: Record<string, string>; body: string }): Promise<{ status: number; json: Record<string, unknown> | null }> {
    const res = await fetch(url, { method: 'POST', ...init, redirect: 'manual', signal: AbortSignal.timeout(this.#config.timeoutMs) });
    const text = await res.text();
    let json: Record<string, unknown> | null = null;
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
    } catch {
      // not JSON: decided below by status
    }
    return { status: res.status, json };
  }

  async #passwordGrant(username: string, password: string): Promise<LegacyVerdict> {
    const c = this.#config;
    const basic = Buffer.from(`${encodeURIComponent(c.clientId!)}:${encodeURIComponent(c.clientSecret!)}`).toString('base64');
    const form = new URLSearchParams({ grant_type: 'password', username, password, ...(c.scope ? { scope: c.scope } : {}) });
    const { status, json } = await this.#post(c.tokenUrl!, {
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form.toString(),
    });
    if ((status === 400 || status === 401) && json?.error === 'invalid_grant') return { valid: false };
    if (status !== 200 || typeof json?.access_token !== 'string') throw new Outage(`token endpoint answered ${status}`);
    // Claims of the tokens the provider just issued to us over this channel (no signature check needed for that).
    const claims: Record<string, unknown> = {};
    for (const token of [json.access_token, json.id_token]) {
      if (typeof token !== 'string') continue;
      try {
        Object.assign(claims, decodeJwt(token));
      } catch {
        // an opaque token carries no profile
      }
    }
    return {
      valid: true,
      profile: {
        ...(typeof claims.email === 'string' ? { email: claims.email } : {}),
        ...(typeof claims.email_verified === 'boolean' ? { emailVerified: claims.email_verified } : {}),
        roles: claimList(claims, c.rolesClaim),
      },
    };
  }

  async #hook(username: string, password: string): Promise<LegacyVerdict> {
    const { status, json } = await this.#post(this.#config.hookUrl!, {
      headers: { authorization: `Bearer ${this.#config.hookSecret}`, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ username, password }),
    });
    if (status !== 200 || typeof json?.valid !== 'boolean') throw new Outage(`hook answered ${status}`);
    if (!json.valid) return { valid: false };
    const p = (json.profile && typeof json.profile === 'object' ? json.profile : {}) as Record<string, unknown>;
    return {
      valid: true,
      profile: {
        ...(typeof p.email === 'string' ? { email: p.email } : {}),
        ...(typeof p.email_verified === 'boolean' ? { emailVerified: p.email_verified } : {}),
        roles: claimList(p, 'roles'),
      },
    };
  }
}

/**
 * The trickle step of a login (checkCredentials' `elsewhere`): undefined when
 * the phase is over (the login goes on as if there were no legacy provider),
 * else the answer: the account created (or the hashless imported user
 * completed) from the legacy provider's yes, or a failure for its no.
 */
export async function fromLegacyIdp(
  deps: { db: Db; hasher: PasswordHasher; idp: LegacyIdp; roles: readonly string[] },
  user: UncheckableUser,
  username: string,
  password: string,
): Promise<CredentialCheck | undefined> {
  const { db, hasher, idp } = deps;
  if (!(await idp.active())) return undefined;
  const verdict = await idp.verify(username, password);
  if (!verdict.valid) return { account: null, reason: user ? 'no_password' : 'unknown_user', ...(user ? { userId: user.id } : {}) };
  const email = user?.email ?? normalizeEmail(verdict.profile.email ?? username);
  if (!email) return { account: null, reason: 'unknown_user' };
  const passwordHash = await hasher.hash(password);
  const emailVerified = verdict.profile.emailVerified ?? false;
  let row: { id: string; roles: string[]; sessionGeneration: number } | null;
  if (user) {
    // Compare-and-swap: only while it still has no password (a reset may have set one).
    const { count } = await db.user.updateMany({ where: { id: user.id, passwordHash: null }, data: { passwordHash, emailVerified } });
    row = count ? await db.user.findUnique({ where: { id: user.id } }) : null;
  } else {
    const roles = [...new Set(verdict.profile.roles.map((r) => idp.roleMap[r] ?? r).filter((r) => deps.roles.includes(r)))];
    row = await db.user
      .create({ data: { email, passwordHash, roles, status: 'active', emailVerified, importSource: idp.source } })
      .catch((err: { code?: string }) => {
        if (err.code === 'P2002') return null; // a concurrent login created it first
        throw err;
      });
  }
  // Lost a race: the row exists now with a hash; check the password against it as for any user.
  if (!row) return checkCredentials(db, hasher, email, password);
  return { account: { accountId: row.id, roles: row.roles, generation: row.sessionGeneration }, email };
}
