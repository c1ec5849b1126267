// Users: creation, the credential check, and the account view tokens carry.
import { z } from 'zod';
import { ServiceError } from '../errors.ts';
import type { Db } from '../store/postgres.ts';
import { ARGON2ID_PREFIX, type PasswordHasher } from './passwords.ts';

export type UserStatus = 'pending' | 'active' | 'disabled';

export type UserView = {
  id: string;
  email: string;
  roles: string[];
  status: UserStatus;
  created_at: string;
  updated_at: string;
  approved_by?: string;
  approved_at?: string;
};

type UserRow = {
  id: string;
  email: string;
  roles: string[];
  status: UserStatus;
  passwordHash: string | null;
  createdAt: Date;
  updatedAt: Date;
  approvedBy?: string | null;
  approvedAt?: Date | null;
};

const emailSchema = z.email();

/** One address, one account: NFC, trimmed, lower-cased. Null when not an email. */
export function normalizeEmail(raw: string): string | null {
  const email = raw.normalize('NFC').trim().toLowerCase();
  return email.length <= 254 && emailSchema.safeParse(email).success ? email : null;
}

/** The public shape of a user: never the hash. */
export function userView(row: UserRow): UserView {
  return {
    id: row.id,
    email: row.email,
    roles: row.roles,
    status: row.status,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    ...(row.approvedBy ? { approved_by: row.approvedBy } : {}),
    ...(row.approvedAt ? { approved_at: row.approvedAt.toISOString() } : {}),
  };
}

export type NewUser = {
  email: string;
  password?: string;
  /** Already hashed (bulk import: argon2id or bcrypt), or null for "no password yet". */
  passwordHash?: string | null;
  roles?: string[];
  status?: UserStatus;
};

export async function createUser(db: Db, hasher: PasswordHasher, input: NewUser): Promise<UserView> {
  const email = normalizeEmail(input.email);
  if (!email) throw new ServiceError('validation_failed', 'email: not a valid email address', { field: 'email' });
  if (input.passwordHash === undefined && !input.password) {
    throw new ServiceError('validation_failed', 'password: required', { field: 'password' });
  }
  const roles = [...new Set((input.roles ?? []).map((r) => r.trim()).filter(Boolean))];
  const passwordHash = input.passwordHash !== undefined ? input.passwordHash : await hasher.hash(input.password!);
  try {
    const row = await db.user.create({ data: { email, passwordHash, roles, status: input.status ?? 'active' } });
    return userView(row);
  } catch (err) {
    if ((err as { code?: string }).code === 'P2002') {
      throw new ServiceError('conflict', 'a user with this email already exists', { field: 'email' });
    }
    throw err;
  }
}

/**
 * An active account as tokens see it. `generation` is the session generation
 * read on the same row: grants record it, and a grant whose generation is
 * not the account's current one is dead (src/tokens/sessions.ts).
 */
export type Account = { accountId: string; roles: string[]; generation: number };

export type LoginFailure = 'unknown_user' | 'bad_password' | 'no_password' | 'account_pending' | 'account_disabled';
export type CredentialCheck = { account: Account; email: string } | { account: null; reason: LoginFailure; userId?: string };

/**
 * Checks a username/password pair. The account only for an active user with
 * a matching password; every other case costs the same one hash verification
 * and carries a reason for the audit log only (never for the client).
 */
/** Row of a user this service cannot check itself: null (unknown), or imported without a hash. */
export type UncheckableUser = { id: string; email: string; status: UserStatus; importSource: string | null } | null;

/** The user a login names, or null. Started beside the login throttle's reservation (src/accounts/login.ts). */
export async function findLoginUser(db: Db, username: string) {
  const email = normalizeEmail(username);
  return email ? db.user.findUnique({ where: { email } }) : null;
}

export async function checkCredentials(
  db: Db,
  hasher: PasswordHasher,
  username: string,
  password: string,
  found: ReturnType<typeof findLoginUser> = findLoginUser(db, username),
  /** Trickle migration (./legacy-idp.ts): decides for an unknown user, or one imported without a hash; undefined = not configured. */
  elsewhere?: (user: UncheckableUser) => Promise<CredentialCheck | undefined>,
): Promise<CredentialCheck> {
  const user = await found;
  if (elsewhere && (!user || (!user.passwordHash && user.importSource !== null && user.status === 'active'))) {
    const decided = await elsewhere(user);
    if (decided) return decided;
  }
  const ok = await hasher.verify(user?.passwordHash, password);
  if (!user) return { account: null, reason: 'unknown_user' };
  if (!user.passwordHash) return { account: null, reason: 'no_password', userId: user.id };
  if (!ok) return { account: null, reason: 'bad_password', userId: user.id };
  if (user.status !== 'active') return { account: null, reason: `account_${user.status}`, userId: user.id };
  if (hasher.needsRehash(user.passwordHash)) {
    // Compare-and-swap on the old hash: a concurrent password change wins.
    const fresh = await hasher.hash(password);
    await db.user.updateMany({ where: { id: user.id, passwordHash: user.passwordHash }, data: { passwordHash: fresh } });
  }
  return { account: { accountId: user.id, roles: user.roles, generation: user.sessionGeneration }, email: user.email };
}

/** Users whose stored hash is not argon2id (see isLegacyHash): upgraded at their next login. */
export function legacyHashCount(db: Db): Promise<number> {
  return db.user.count({ where: { passwordHash: { not: null }, NOT: { passwordHash: { startsWith: ARGON2ID_PREFIX } } } });
}

/** The account behind a token, or null when it is gone or no longer active. */
export async function findActiveAccount(db: Db, id: string): Promise<Account | null> {
  if (!z.uuid().safeParse(id).success) return null;
  const user = await db.user.findUnique({ where: { id }, select: { id: true, roles: true, status: true, sessionGeneration: true } });
  return user && user.status === 'active' ? { accountId: user.id, roles: user.roles, generation: user.sessionGeneration } : null;
}
