// A real SMTP server on a loopback port (smtp-server) that keeps every message,
// for tests of the mails the service sends (reset links, registration notices).
import { SMTPServer } from 'smtp-server';
import { freePort } from './service.ts';

export type Mail = { to: string[]; raw: string; text: string };

// Quoted-printable soft line breaks and escapes, enough to read a link.
const decodeQp = (s: string) => s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));

export class TestMailbox {
  readonly inbox: Mail[] = [];
  #server: SMTPServer | undefined;
  #port = 0;

  /** SMTP_URL for the service. */
  get url(): string {
    return `smtp://127.0.0.1:${this.#port}`;
  }

  async start(): Promise<this> {
    this.#port = await freePort();
    this.#server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onData: (stream, session, done) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          this.inbox.push({ to: session.envelope.rcptTo.map((r) => r.address), raw, text: decodeQp(raw) });
          done();
        });
      },
    });
    await new Promise<void>((resolve) => this.#server!.listen(this.#port, '127.0.0.1', resolve));
    return this;
  }

  /** Mails to `address` so far. */
  to(address: string): Mail[] {
    return this.inbox.filter((m) => m.to.includes(address));
  }

  /** The `count`-th mail to `address`, waiting up to 10 s for it. */
  async mailFor(address: string, count = 1): Promise<Mail> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const mails = this.to(address);
      if (mails.length >= count) return mails[count - 1]!;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no mail #${count} for ${address}`);
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}

/** The reset token in a mailed link (`?token=…`). */
export const tokenIn = (mail: Mail): string => /[?&]token=([A-Za-z0-9_-]+)/.exec(mail.text)![1]!;
/** The reset link itself. */
export const linkIn = (mail: Mail): string => /https?:\/\/\S+[?&]token=[A-Za-z0-9_-]+/.exec(mail.text)![0]!;
