// Password reset by email. The token is 256 random bits; Postgres keeps only
// its SHA-256 (a database dump cannot reset anyone), with an expiry. Postgres
// rather than Redis: it works in development without Redis, and deleting the
// row is the single-use check (of two concurrent completions only one delete
// finds it). The request answers the same whether or not the account exists,
// and the mail goes out after the response, so its latency does not tell either.
import nodemailer from 'nodemailer';
import { ServiceError } from '../errors.ts';
import { randomToken, sha256 } from '../lib/crypto.ts';
import type { Logger } from '../observability/log.ts';
import type { AuditLog, AuditMeta } from '../security/audit.ts';
import type { Db } from '../store/postgres.ts';
import type { Accounts } from './lifecycle.ts';
import { checkPassword } from './policy.ts';
import { normalizeEmail } from './users.ts';

export type MailConfig = Readonly<{ smtpUrl: string | undefined; from: string; resetUrl: string; resetTtl: number }>;

const invalidToken = () => new ServiceError('validation_failed', 'token: invalid, used or expired', { field: 'token' });

export type PasswordResetsDeps = { accounts: Accounts; db: Db; audit: AuditLog; mail: MailConfig; logger: Logger };

export class PasswordResets {
  readonly #accounts: Accounts;
  readonly #db: Db;
  readonly #audit: AuditLog;
  readonly #mail: MailConfig;
  readonly #logger: Logger;
  readonly #transport: ReturnType<typeof nodemailer.createTransport> | undefined;

  constructor(deps: PasswordResetsDeps) {
    this.#accounts = deps.accounts;
    this.#db = deps.db;
    this.#audit = deps.audit;
    this.#mail = deps.mail;
    this.#logger = deps.logger;
    this.#transport = deps.mail.smtpUrl ? nodemailer.createTransport(deps.mail.smtpUrl) : undefined;
  }

  /** Always resolves the same way; mails a link only to an existing active user. */
  async request(rawEmail: string, meta: AuditMeta): Promise<void> {
    const email = normalizeEmail(rawEmail);
    const user = email ? await this.#accounts.findByEmail(email) : null;
    if (!user || user.status !== 'active') return;
    await this.#audit.record({ ...meta, type: 'password.reset_requested', subject: user.id });
    const link = await this.#issue(user.id);
    void this.#send(user.email, link);
  }

  /** Admin-forced reset: the current password stops working at once, every grant is revoked. */
  async force(userId: string, meta: AuditMeta): Promise<{ email_sent: boolean; reset_url?: string }> {
    const user = await this.#accounts.get(userId);
    await this.#accounts.clearPassword(userId, { ...meta, type: 'password.reset_forced', subject: userId });
    const link = await this.#issue(userId);
    // Without SMTP the admin hands the link over by another channel.
    if (!this.#transport) return { email_sent: false, reset_url: link };
    await this.#send(user.email, link);
    return { email_sent: true };
  }

  async complete(token: string, password: string, meta: AuditMeta): Promise<void> {
    const db = this.#db;
    const tokenHash = sha256(token);
    const row = await db.passwordResetToken.findUnique({ where: { tokenHash }, include: { user: true } });
    if (!row || row.expiresAt <= new Date() || row.user.status === 'disabled') throw invalidToken();
    checkPassword(this.#accounts.policy, password, { email: row.user.email });
    // The token's single use, the new password, the new session generation
    // and the audit row: one transaction.
    await this.#accounts.setPassword(row.userId, row.user.passwordHash, password, { ...meta, type: 'password.reset', subject: row.userId }, async (tx) => {
      const { count } = await tx.passwordResetToken.deleteMany({ where: { tokenHash } });
      if (count !== 1) throw invalidToken();
      await tx.passwordResetToken.deleteMany({ where: { userId: row.userId } });
    });
  }

  async #issue(userId: string): Promise<string> {
    const token = randomToken();
    const expiresAt = new Date(Date.now() + this.#mail.resetTtl * 1000);
    await this.#db.passwordResetToken.create({ data: { tokenHash: sha256(token), userId, expiresAt } });
    const url = new URL(this.#mail.resetUrl);
    url.searchParams.set('token', token);
    return url.toString();
  }

  async #send(to: string, link: string): Promise<void> {
    if (!this.#transport) {
      this.#logger.warn('SMTP_URL is not set: password reset email not sent');
      return;
    }
    const minutes = Math.round(this.#mail.resetTtl / 60);
    try {
      await this.#transport.sendMail({
        from: this.#mail.from,
        to,
        subject: 'Reset your password',
        text: `Someone asked to reset the password of this account. If it was you, open this link within ${minutes} minutes:\n\n${link}\n\nIf it was not you, ignore this message; your password stays as it is.\n`,
      });
    } catch (err) {
      this.#logger.error({ err: { message: (err as Error).message } }, 'password reset email failed');
    }
  }
}
