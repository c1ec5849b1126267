// Self-registration (REGISTRATION_MODE open or approval): never a role or a
// status from the request. It answers the same, 202 "accepted", whether the
// address is new or already has an account, so it cannot be used to find out
// who has one (OWASP ASVS 5.0 6.3.8). Both cases do the same work before the
// answer: the rate limits, the password policy, one argon2 hash, one INSERT
// (which fails on a taken address) and one audit row. The mail tells the
// address's owner what happened: the new account, or that someone tried to
// register an address that already has one (with the way to reset a
// forgotten password). The owner of the mailbox learns it; nobody else does.
import { ServiceError } from '../errors.ts';
import type { AuditLog, AuditMeta } from '../security/audit.ts';
import type { SelfServiceLimits } from '../security/self-service-limits.ts';
import type { Db } from '../store/postgres.ts';
import type { Background } from './background.ts';
import type { Accounts } from './lifecycle.ts';
import { usernameKey } from './login.ts';
import type { Mailer } from './mailer.ts';
import type { PasswordHasher } from './passwords.ts';
import { checkPassword } from './policy.ts';
import { createUser, normalizeEmail } from './users.ts';

export type RegistrationMode = 'closed' | 'open' | 'approval';

export type RegistrationDeps = {
  mode: RegistrationMode;
  accounts: Accounts;
  db: Db;
  hasher: PasswordHasher;
  audit: AuditLog;
  limits: SelfServiceLimits;
  mailer: Mailer;
  background: Background;
  /** Where a forgotten password is reset (PASSWORD_RESET_URL, without a token). */
  resetUrl: string;
};

export class Registration {
  readonly #deps: RegistrationDeps;

  constructor(deps: RegistrationDeps) {
    this.#deps = deps;
  }

  async register(input: { email: string; password: string }, meta: AuditMeta): Promise<void> {
    const { mode, accounts, db, hasher, audit, limits } = this.#deps;
    if (mode === 'closed') throw new ServiceError('forbidden', 'self-registration is closed');
    const email = normalizeEmail(input.email);
    if (!email) throw new ServiceError('validation_failed', 'email: not a valid email address', { field: 'email' });
    await limits.consume('register', meta.ip ?? 'unknown', usernameKey(email));
    checkPassword(accounts.policy, input.password, { email });
    const status = mode === 'open' ? 'active' : 'pending';
    try {
      const user = await createUser(db, hasher, { email, password: input.password, roles: [], status });
      await audit.record({ ...meta, type: 'user.registered', subject: user.id, details: { status } });
      this.#later(email, status === 'active' ? 'created' : 'pending');
    } catch (err) {
      if (!(err instanceof ServiceError && err.code === 'conflict')) throw err;
      // The audit row has no subject: linking it to the account would take a lookup the new-address case does not make.
      await audit.record({ ...meta, type: 'user.registration_refused', outcome: 'failure', reason: 'email_taken' });
      this.#later(email, 'taken');
    }
  }

  #later(email: string, what: 'created' | 'pending' | 'taken'): void {
    const { accounts, mailer, background, resetUrl } = this.#deps;
    background.run('registration mail', async () => {
      if (what === 'created') {
        return mailer.send(email, 'Your account is ready', `An account was created for ${email}. You can now sign in with the password you chose.\n`);
      }
      if (what === 'pending') {
        return mailer.send(email, 'Your registration', `We received a registration for ${email}. An administrator will review it; you can sign in once it is approved.\n`);
      }
      const owner = await accounts.findByEmail(email);
      if (!owner || owner.status === 'disabled') return;
      await mailer.send(
        email,
        'Someone tried to register with your address',
        `Someone (perhaps you) tried to register a new account with ${email}, which already has one. Nothing was changed.\n\n` +
          `If it was you and you forgot your password, request a reset link here:\n\n${resetUrl}\n\nIf it was not you, you can ignore this message.\n`,
      );
    });
  }
}
