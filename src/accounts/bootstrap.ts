// The first admin from ADMIN_BOOTSTRAP_EMAIL + ADMIN_BOOTSTRAP_PASSWORD_FILE
// (a mounted Secret), read on every boot so a wrong path fails fast. Idempotent: once any admin exists, or the email is
// taken, it does nothing, so it is safe on every boot of every replica. There
// is no default credential: without both variables, nothing is created.
import { readFile } from 'node:fs/promises';
import { ServiceError } from '../errors.ts';
import type { Logger } from '../observability/log.ts';
import type { Accounts } from './lifecycle.ts';
import { passwordFromBytes } from './policy.ts';

export async function bootstrapAdmin(
  accounts: Accounts,
  bootstrap: { email: string; passwordFile: string } | undefined,
  logger: Logger,
): Promise<'created' | 'skipped'> {
  if (!bootstrap) return 'skipped';
  const bytes = await readFile(bootstrap.passwordFile).catch((cause: unknown) => {
    throw new ServiceError('config_invalid', `ADMIN_BOOTSTRAP_PASSWORD_FILE: cannot read ${bootstrap.passwordFile}`, { cause });
  });
  if (await accounts.hasAdmin()) return 'skipped';
  try {
    const password = passwordFromBytes(bytes).replace(/\r?\n$/, '');
    const user = await accounts.create(
      { email: bootstrap.email, password, roles: ['admin'], status: 'active' },
      { actor: 'bootstrap' },
    );
    logger.info({ user: user.id }, 'bootstrap admin created');
    return 'created';
  } catch (err) {
    // Another replica won the race, or the address belongs to a non-admin.
    if (err instanceof ServiceError && err.code === 'conflict') return 'skipped';
    if (err instanceof ServiceError) throw new ServiceError('config_invalid', `ADMIN_BOOTSTRAP: ${err.message}`, { field: err.field });
    throw err;
  }
}
