// Outgoing mail (nodemailer over SMTP_URL): reset links and registration
// notices. Sending never fails the action that asked for it: a failure is
// logged (without the address or the body) and dropped.
import nodemailer from 'nodemailer';
import type { Logger } from '../observability/log.ts';

export type MailConfig = Readonly<{ smtpUrl: string | undefined; from: string; resetUrl: string; resetTtl: number }>;

export class Mailer {
  readonly #from: string;
  readonly #logger: Logger;
  readonly #transport: ReturnType<typeof nodemailer.createTransport> | undefined;

  constructor(mail: Pick<MailConfig, 'smtpUrl' | 'from'>, logger: Logger) {
    this.#from = mail.from;
    this.#logger = logger;
    this.#transport = mail.smtpUrl ? nodemailer.createTransport(mail.smtpUrl) : undefined;
  }

  /** False without SMTP_URL: then nothing is sent (an admin hands reset links over another way). */
  get enabled(): boolean {
    return !!this.#transport;
  }

  async send(to: string, subject: string, text: string): Promise<void> {
    if (!this.#transport) {
      this.#logger.warn({ subject }, 'SMTP_URL is not set: email not sent');
      return;
    }
    try {
      await this.#transport.sendMail({ from: this.#from, to, subject, text });
    } catch (err) {
      this.#logger.error({ err: { message: (err as Error).message }, subject }, 'email failed');
    }
  }
}
