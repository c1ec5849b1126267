// The second factor: TOTP (RFC 6238, SHA-1, 6 digits, 30 s, the form every
// authenticator app reads) and single-use recovery codes. See README "Second
// factor".
//
// - The secret is sealed under a key derived from the KEK, bound to the user
//   id (src/lib/crypto.ts), shown once at enrollment and never logged.
// - An enrollment counts only once confirmed with a code.
// - A code is accepted for the current step or one step either side (clock
//   drift of ±30 s) and only for a step later than the last one accepted:
//   one conditional UPDATE decides, so a code used once (or by a parallel
//   request) is refused inside its window (RFC 6238 §5.2).
// - Recovery codes are 10 random codes of 60 bits, shown once, stored as
//   HMACs; using one removes it in one conditional UPDATE (single use).
// - Every check goes through the login guard (src/accounts/login.ts) under
//   the account's username key: wrong codes count, and throttle, exactly as
//   wrong passwords do.
import { Secret, TOTP } from 'otpauth';
import { z } from 'zod';
import { ServiceError } from '../errors.ts';
import { keyedHash, seal, unseal } from '../lib/crypto.ts';
import type { Logger } from '../observability/log.ts';
import type { AuditLog, AuditMeta } from '../security/audit.ts';
import type { SecurityEvents } from '../security/events.ts';
import type { Db } from '../store/postgres.ts';
import type { SessionCleanup } from './lifecycle.ts';
import type { LoginSource, PasswordLogin } from './login.ts';

export const TOTP_PERIOD = 30;
/** Steps accepted either side of the current one (±30 s of clock drift). */
export const TOTP_DRIFT_STEPS = 1;
export const RECOVERY_CODE_COUNT = 10;

/** Purposes for deriveKey (the TOTP secret's encryption key, the recovery codes' HMAC key). */
export const TOTP_KEY_PURPOSE = 'identity totp secrets';
export const RECOVERY_KEY_PURPOSE = 'identity recovery codes';

export type SecondFactorDeps = {
  db: Db;
  login: PasswordLogin;
  audit: AuditLog;
  events: SecurityEvents;
  sessions: SessionCleanup;
  logger?: Logger;
  /** deriveKey(kek, TOTP_KEY_PURPOSE) and deriveKey(kek, RECOVERY_KEY_PURPOSE). */
  secretKey: Buffer;
  recoveryKey: Buffer;
  /** The name authenticator apps show (the otpauth URI's issuer). */
  issuerName: string;
  /** Roles that must have a second factor (MFA_REQUIRED_ROLES). */
  requiredRoles: readonly string[];
};

/** What a login needs to know about an account's second factor. */
export type MfaState = { enrolled: boolean; required: boolean };

/** A presented second factor. */
export type Proof = { otp: string } | { recoveryCode: string };

const OTP = /^\d{6}$/;
const notFound = () => new ServiceError('not_found', 'no such user');

/** Recovery codes as shown: 12 base32 characters in groups of four (60 bits). */
function newRecoveryCode(): string {
  const raw = new Secret({ size: 8 }).base32.slice(0, 12).toLowerCase();
  return `${raw.slice(0, 4)}-${raw.slice(4, 8)}-${raw.slice(8, 12)}`;
}
const normalizeRecoveryCode = (code: string) => code.toLowerCase().replace(/[^a-z2-7]/g, '');

export class SecondFactor {
  readonly #deps: SecondFactorDeps;

  constructor(deps: SecondFactorDeps) {
    this.#deps = deps;
  }

  #totp(secret: string, label: string): TOTP {
    const { issuerName: issuer } = this.#deps;
    return new TOTP({ issuer, label, algorithm: 'SHA1', digits: 6, period: TOTP_PERIOD, secret: Secret.fromBase32(secret) });
  }

  #secretOf(userId: string, sealed: string): string {
    return unseal(this.#deps.secretKey, sealed, `totp:${userId}`);
  }

  /** The account's state: enrolled (confirmed), required (by the user flag or a role). */
  async state(userId: string): Promise<MfaState> {
    if (!z.uuid().safeParse(userId).success) return { enrolled: false, required: false };
    const row = await this.#deps.db.user.findUnique({
      where: { id: userId },
      select: { roles: true, mfaRequired: true, totp: { select: { confirmedAt: true } } },
    });
    if (!row) return { enrolled: false, required: false };
    return {
      enrolled: !!row.totp?.confirmedAt,
      required: row.mfaRequired || row.roles.some((r) => this.#deps.requiredRoles.includes(r)),
    };
  }

  /** The caller's own view (no secret): enrolled, required, recovery codes left. */
  async status(userId: string): Promise<{ enrolled: boolean; pending: boolean; required: boolean; recovery_codes_left: number }> {
    const state = await this.state(userId);
    const row = await this.#deps.db.userTotp.findUnique({ where: { userId } });
    return { ...state, pending: !!row && !row.confirmedAt, recovery_codes_left: row?.confirmedAt ? row.recoveryCodes.length : 0 };
  }

  /**
   * Starts (or restarts) an enrollment: a new secret, returned once with its
   * otpauth:// URI. Refused while a confirmed one exists (disable it first).
   */
  async start(userId: string): Promise<{ secret: string; otpauth_uri: string }> {
    const user = await this.#deps.db.user.findUnique({
      where: { id: userId },
      select: { email: true, totp: { select: { confirmedAt: true } } },
    });
    if (!user) throw notFound();
    if (user.totp?.confirmedAt) throw new ServiceError('conflict', 'a second factor is already enrolled; disable it first');
    const secret = new Secret({ size: 20 }).base32;
    const secretEnc = seal(this.#deps.secretKey, secret, `totp:${userId}`);
    await this.#deps.db.userTotp.upsert({
      where: { userId },
      create: { userId, secretEnc },
      update: { secretEnc, confirmedAt: null, lastUsedStep: 0n, recoveryCodes: [] },
    });
    return { secret, otpauth_uri: this.#totp(secret, user.email).toString() };
  }

  /** Confirms the pending enrollment with a current code; returns the recovery codes (shown once). */
  async confirm(userId: string, code: string, meta: AuditMeta): Promise<{ recovery_codes: string[] }> {
    const row = await this.#deps.db.userTotp.findUnique({ where: { userId } });
    if (!row || row.confirmedAt) throw new ServiceError('conflict', 'no enrollment is pending; start one first');
    const step = this.#matchingStep(this.#secretOf(userId, row.secretEnc), code);
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
    const recoveryCodes = codes.map((c) => keyedHash(this.#deps.recoveryKey, normalizeRecoveryCode(c)));
    // Conditional on the row still being this pending enrollment.
    const { count } =
      step === null
        ? { count: 0 }
        : await this.#deps.db.userTotp.updateMany({
            where: { userId, confirmedAt: null, secretEnc: row.secretEnc, lastUsedStep: { lt: step } },
            data: { confirmedAt: new Date(), lastUsedStep: step, recoveryCodes },
          });
    if (count !== 1) throw new ServiceError('forbidden', 'the code is wrong or was already used', { field: 'code' });
    await this.#deps.audit.record({ ...meta, type: 'mfa.enrolled', subject: userId });
    this.#deps.events.emit('mfa.enrolled', { accountId: userId });
    return { recovery_codes: codes };
  }

  /** Disables the second factor: the current password and a current code (or a recovery code). */
  async disable(userId: string, password: string, proof: Proof, meta: AuditMeta): Promise<void> {
    const user = await this.#deps.db.user.findUnique({ where: { id: userId } });
    if (!user) throw notFound();
    const source = sourceOf(meta);
    const ok =
      (await this.#deps.login.confirm(source, user, password, 'mfa.disabled')) && (await this.check(source, { id: userId, email: user.email }, proof));
    if (!ok) throw new ServiceError('forbidden', 'the password or the code is wrong');
    await this.#deps.db.userTotp.deleteMany({ where: { userId } });
    await this.#deps.audit.record({ ...meta, type: 'mfa.disabled', subject: userId });
    this.#deps.events.emit('mfa.disabled', { accountId: userId });
  }

  /** An admin's reset: the second factor is removed and every session of the user ends (one transaction). */
  async reset(userId: string, meta: AuditMeta): Promise<void> {
    if (!z.uuid().safeParse(userId).success) throw notFound();
    await this.#deps.db.$atomic(async (tx) => {
      const row = await tx.user.update({ where: { id: userId }, data: { sessionGeneration: { increment: 1 } } }).catch(() => {
        throw notFound();
      });
      await tx.userTotp.deleteMany({ where: { userId } });
      await this.#deps.audit.recordIn(tx, { ...meta, type: 'mfa.reset', subject: userId, details: { generation: row.sessionGeneration } });
    });
    this.#deps.events.emit('mfa.reset', { accountId: userId });
    // Clean-up only: the new generation already ended the sessions.
    await this.#deps.sessions.purgeAccount(userId).catch((err: unknown) => {
      this.#deps.logger?.warn({ err: { message: (err as Error).message } }, 'grant clean-up after mfa reset failed');
    });
  }

  /** An admin's per-user policy flag. */
  async setRequired(userId: string, required: boolean, meta: AuditMeta): Promise<{ mfa_required: boolean }> {
    if (!z.uuid().safeParse(userId).success) throw notFound();
    const row = await this.#deps.db.user.update({ where: { id: userId }, data: { mfaRequired: required } }).catch(() => {
      throw notFound();
    });
    await this.#deps.audit.record({ ...meta, type: 'user.updated', subject: userId, details: { mfa_required: required } });
    return { mfa_required: row.mfaRequired };
  }

  /**
   * A second-factor check behind the login guard: true when the code is
   * right and was not used before; false when wrong, used, or throttled
   * (alike). Throws the guard's 429/503 errors.
   */
  async check(source: LoginSource, account: { id: string; email: string }, proof: Proof): Promise<boolean> {
    const meta = { clientId: source.clientId, ip: source.ip, requestId: source.requestId, actor: account.id, subject: account.id };
    const passed = await this.#deps.login.secondFactor(source, account.email, async () => {
      const ok = 'otp' in proof ? await this.#useOtp(account.id, proof.otp) : await this.#useRecoveryCode(account.id, proof.recoveryCode);
      const method = 'otp' in proof ? 'otp' : 'recovery_code';
      if (!ok) {
        await this.#deps.audit.record({ ...meta, type: 'mfa.challenge_failed', outcome: 'failure', details: { method } });
        this.#deps.events.emit('mfa.challenge_failed', { accountId: account.id, clientId: source.clientId, method });
        return null;
      }
      const type = method === 'otp' ? 'mfa.challenge_passed' : 'mfa.recovery_code_used';
      await this.#deps.audit.record({ ...meta, type, details: { method } });
      this.#deps.events.emit(type, { accountId: account.id, clientId: source.clientId, method });
      return { accountId: account.id, value: true };
    });
    return passed === true;
  }

  /** `check` for an account known by id (the token endpoint's tickets carry the id). False when it is gone. */
  async checkAccount(source: LoginSource, userId: string, proof: Proof): Promise<boolean> {
    const user = await this.#deps.db.user.findUnique({ where: { id: userId }, select: { email: true } });
    return !!user && (await this.check(source, { id: userId, email: user.email }, proof));
  }

  /** The time step `code` is valid for (current ± drift), or null. */
  #matchingStep(secret: string, code: string, now = Date.now()): bigint | null {
    if (!OTP.test(code)) return null;
    const totp = this.#totp(secret, 'check');
    const delta = totp.validate({ token: code, timestamp: now, window: TOTP_DRIFT_STEPS });
    return delta === null ? null : BigInt(totp.counter({ timestamp: now }) + delta);
  }

  async #useOtp(userId: string, code: string): Promise<boolean> {
    const row = await this.#deps.db.userTotp.findUnique({ where: { userId } });
    if (!row?.confirmedAt) return false;
    const step = this.#matchingStep(this.#secretOf(userId, row.secretEnc), code);
    if (step === null) return false;
    // The replay check and the record of this step are one statement.
    const { count } = await this.#deps.db.userTotp.updateMany({
      where: { userId, confirmedAt: { not: null }, lastUsedStep: { lt: step } },
      data: { lastUsedStep: step },
    });
    return count === 1;
  }

  async #useRecoveryCode(userId: string, code: string): Promise<boolean> {
    const normalized = normalizeRecoveryCode(code);
    if (normalized.length !== 12) return false;
    const hash = keyedHash(this.#deps.recoveryKey, normalized);
    // Single use: removed only if present, in one statement.
    const count = await this.#deps.db.$executeRaw`
      UPDATE "user_totp" SET "recovery_code_hashes" = array_remove("recovery_code_hashes", ${hash})
      WHERE "user_id" = ${userId}::uuid AND "confirmed_at" IS NOT NULL AND ${hash} = ANY("recovery_code_hashes")`;
    return count === 1;
  }
}

/** The login guard's view of an API request's origin. */
export function sourceOf(meta: AuditMeta): LoginSource {
  return { clientId: meta.clientId ?? null, ip: meta.ip ?? 'unknown', requestId: meta.requestId ?? null };
}
