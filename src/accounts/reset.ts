// Password reset by email. The token is 256 random bits; Postgres keeps only
// its SHA-256 (a database dump cannot reset anyone), with an expiry, and at
// most one per user: a new request replaces the previous link (the row is
// unique per user and written with one upsert, so concurrent requests cannot
// leave two). Postgres rather than Redis: it works in development without
// Redis, and deleting the row is the single-use check (of two concurrent
// completions only one delete finds it). Any password change deletes the row
// (Accounts.setPassword, in the same transaction).
//
// A request does the same work and takes the same time whatever the address:
// the rate limits, then the purge of expired tokens, then the answer. Looking
// the address up, writing its token and mailing the link happen afterwards
// (./background.ts), so neither the answer nor its latency tells whether an
// account exists.
import { ServiceError } from '../errors.ts';
import { randomToken, sha256 } from '../lib/crypto.ts';
import type { AuditLog, AuditMeta } from '../security/audit.ts';
import type { SelfServiceLimits } from '../security/self-service-limits.ts';
import type { Db } from '../store/postgres.ts';
import type { Background } from './background.ts';
import type { Accounts } from './lifecycle.ts';
import { usernameKey } from './login.ts';
import type { MailConfig, Mailer } from './mailer.ts';
import { checkPassword } from './policy.ts';
import { normalizeEmail } from './users.ts';

const invalidToken = () => new ServiceError('validation_failed', 'token: invalid, used or expired', { field: 'token' });

export type PasswordResetsDeps = {
  accounts: Accounts;
  db: Db;
  audit: AuditLog;
  mail: MailConfig;
  mailer: Mailer;
  limits: SelfServiceLimits;
  background: Background;
};

export class PasswordResets {
  readonly #deps: PasswordResetsDeps;

  constructor(deps: PasswordResetsDeps) {
    this.#deps = deps;
  }

  /** Always resolves the same way (or 429/503 the same way); mails a link only to an existing active user. */
  async request(rawEmail: string, meta: AuditMeta): Promise<void> {
    const { db, limits, background } = this.#deps;
    await limits.consume('forgot', meta.ip ?? 'unknown', usernameKey(rawEmail));
    await db.passwordResetToken.deleteMany({ where: { expiresAt: { lte: new Date() } } });
    const email = normalizeEmail(rawEmail);
    if (email) background.run('password reset request', () => this.#mailLink(email, meta));
  }

  async #mailLink(email: string, meta: AuditMeta): Promise<void> {
    const user = await this.#deps.accounts.findByEmail(email);
    if (!user || user.status !== 'active') return;
    const link = await this.#issue(user.id);
    await this.#deps.audit.record({ ...meta, type: 'password.reset_requested', subject: user.id });
    await this.#send(user.email, link);
  }

  /** Admin-forced reset: the current password stops working at once, every grant is revoked. */
  async force(userId: string, meta: AuditMeta): Promise<{ email_sent: boolean; reset_url?: string }> {
    const { accounts, mailer } = this.#deps;
    const user = await accounts.get(userId);
    await accounts.clearPassword(userId, { ...meta, type: 'password.reset_forced', subject: userId });
    const link = await this.#issue(userId);
    // Without SMTP the admin hands the link over by another channel.
    if (!mailer.enabled) return { email_sent: false, reset_url: link };
    await this.#send(user.email, link);
    return { email_sent: true };
  }

  async complete(token: string, password: string, meta: AuditMeta): Promise<void> {
    const { db, accounts } = this.#deps;
    const tokenHash = sha256(token);
    const row = await db.passwordResetToken.findUnique({ where: { tokenHash }, include: { user: true } });
    if (!row || row.expiresAt <= new Date() || row.user.status === 'disabled') throw invalidToken();
    checkPassword(accounts.policy, password, { email: row.user.email });
    // The token's single use, the new password, the new session generation
    // and the audit row: one transaction.
    await accounts.setPassword(row.userId, row.user.passwordHash, password, { ...meta, type: 'password.reset', subject: row.userId }, async (tx) => {
      const { count } = await tx.passwordResetToken.deleteMany({ where: { tokenHash } });
      if (count !== 1) throw invalidToken();
    });
  }

  /** A new link for the user; it replaces any earlier one (one row per user). */
  async #issue(userId: string): Promise<string> {
    const { db, mail } = this.#deps;
    const token = randomToken();
    const fields = { tokenHash: sha256(token), expiresAt: new Date(Date.now() + mail.resetTtl * 1000), createdAt: new Date() };
    await db.passwordResetToken.upsert({ where: { userId }, create: { userId, ...fields }, update: fields });
    const url = new URL(mail.resetUrl);
    url.searchParams.set('token', token);
    return url.toString();
  }

  #send(to: string, link: string): Promise<void> {
    const minutes = Math.round(this.#deps.mail.resetTtl / 60);
    return this.#deps.mailer.send(
      to,
      'Reset your password',
      `Someone asked to reset the password of this account. If it was you, open this link within ${minutes} minutes:\n\n${link}\n\nIf it was not you, ignore this message; your password stays as it is.\n`,
    );
  }
}
