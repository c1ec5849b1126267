// The user lifecycle behind the admin API, self-registration and the CLI:
// pending → active → disabled, roles from the configured list, password
// changes. Every change is audited; disabling, deleting and password changes
// revoke all of the user's grants at once.
import { z } from 'zod';
import { ServiceError } from '../errors.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import type { AuditLog, AuditMeta } from '../security/audit.ts';
import type { Db } from '../store/postgres.ts';
import type { PasswordLogin } from './login.ts';
import type { PasswordHasher } from './passwords.ts';
import { checkPassword, type PasswordPolicy } from './policy.ts';
import { createUser, legacyHashCount, normalizeEmail, userView, type NewUser, type UserStatus, type UserView } from './users.ts';

/**
 * Ends every session (refresh token family) of an account. Implemented by the
 * token store (src/tokens); the composition root passes it in.
 */
export type SessionRevoker = {
  /** Revokes all grants of the account; resolves to how many there were. */
  revokeAccount(accountId: string): Promise<number>;
};

export type AccountsDeps = {
  db: Db;
  hasher: PasswordHasher;
  policy: PasswordPolicy;
  roles: readonly string[];
  sessions: SessionRevoker;
  audit: AuditLog;
  /** The login guard: the current password before a change is checked through it. */
  login: PasswordLogin;
};

export type UserFilter = { status?: UserStatus; role?: string; email?: string; limit: number; offset: number };

const notFound = () => new ServiceError('not_found', 'no such user');

export class Accounts {
  readonly #deps: AccountsDeps;

  constructor(deps: AccountsDeps) {
    this.#deps = deps;
  }

  /** The password rules (for callers that set passwords, such as resets). */
  get policy(): PasswordPolicy {
    return this.#deps.policy;
  }

  checkRoles(roles: readonly string[]): string[] {
    const unknown = roles.filter((r) => !this.#deps.roles.includes(r));
    if (unknown.length) {
      throw new ServiceError('validation_failed', `roles: unknown role ${unknown.join(', ')} (configured: ${this.#deps.roles.join(', ')})`, {
        field: 'roles',
      });
    }
    return [...new Set(roles)];
  }

  /** Admin (or CLI) creation. Without a password the user cannot log in until a reset. */
  async create(
    input: { email: string; password?: string; roles: string[]; status: UserStatus },
    meta: AuditMeta,
  ): Promise<UserView> {
    const roles = this.checkRoles(input.roles);
    if (input.password !== undefined) checkPassword(this.#deps.policy, input.password, { email: input.email });
    const user = await createUser(this.#deps.db, this.#deps.hasher, {
      email: input.email,
      roles,
      status: input.status,
      ...(input.password !== undefined ? { password: input.password } : { passwordHash: null }),
    });
    await this.#deps.audit.record({ ...meta, type: 'user.created', subject: user.id, details: { roles, status: user.status } });
    return user;
  }

  async list(filter: UserFilter): Promise<{ items: UserView[]; total: number }> {
    const email = filter.email ? normalizeEmail(filter.email) ?? filter.email.trim().toLowerCase() : undefined;
    const where: Prisma.UserWhereInput = {
      status: filter.status,
      ...(filter.role ? { roles: { has: filter.role } } : {}),
      ...(email ? { email: { contains: email } } : {}),
    };
    const [rows, total] = await Promise.all([
      this.#deps.db.user.findMany({ where, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }], skip: filter.offset, take: filter.limit }),
      this.#deps.db.user.count({ where }),
    ]);
    return { items: rows.map(userView), total };
  }

  async get(id: string): Promise<UserView> {
    return userView(await this.#row(id));
  }

  async #row(id: string) {
    if (!z.uuid().safeParse(id).success) throw notFound();
    const row = await this.#deps.db.user.findUnique({ where: { id } });
    if (!row) throw notFound();
    return row;
  }

  /** Roles and/or status. pending → active is an approval (who and when are kept). */
  async update(id: string, change: { roles?: string[]; status?: UserStatus }, meta: AuditMeta): Promise<UserView> {
    const before = await this.#row(id);
    const roles = change.roles ? this.checkRoles(change.roles) : undefined;
    const approving = before.status === 'pending' && change.status === 'active';
    const row = await this.#deps.db.user.update({
      where: { id },
      data: {
        ...(roles ? { roles } : {}),
        ...(change.status ? { status: change.status } : {}),
        ...(approving ? { approvedBy: meta.actor ?? null, approvedAt: new Date() } : {}),
      },
    });
    const audit = this.#deps.audit;
    if (roles && roles.join(' ') !== before.roles.join(' ')) {
      await audit.record({ ...meta, type: 'user.roles_changed', subject: id, details: { from: before.roles, to: roles } });
    }
    if (change.status && change.status !== before.status) {
      if (change.status === 'disabled') await this.#deps.sessions.revokeAccount(id);
      const type = approving ? 'user.approved' : change.status === 'disabled' ? 'user.disabled' : 'user.updated';
      await audit.record({ ...meta, type, subject: id, details: { from: before.status, to: change.status } });
    }
    return userView(row);
  }

  approve(id: string, meta: AuditMeta): Promise<UserView> {
    return this.#row(id).then((row) => {
      if (row.status !== 'pending') throw new ServiceError('conflict', `user is ${row.status}, not pending`, { field: 'status' });
      return this.update(id, { status: 'active' }, meta);
    });
  }

  async delete(id: string, meta: AuditMeta): Promise<void> {
    const row = await this.#row(id);
    await this.#deps.sessions.revokeAccount(id);
    await this.#deps.db.user.delete({ where: { id } }).catch((err: { code?: string }) => {
      if (err.code === 'P2025') throw notFound();
      throw err;
    });
    await this.#deps.audit.record({ ...meta, type: 'user.deleted', subject: id, details: { email: row.email } });
  }

  async revokeSessions(id: string, meta: AuditMeta): Promise<number> {
    await this.#row(id);
    const revoked = await this.#deps.sessions.revokeAccount(id);
    await this.#deps.audit.record({ ...meta, type: 'user.sessions_revoked', subject: id, details: { grants: revoked } });
    return revoked;
  }

  /**
   * A logged-in user's own change: needs the current password, checked by
   * the login guard (same limits, hash gate and events as the password
   * grant; throttled looks exactly like wrong). Ends every other session.
   */
  async changePassword(id: string, current: string, next: string, meta: AuditMeta): Promise<void> {
    const row = await this.#row(id);
    if (row.status !== 'active') throw new ServiceError('forbidden', 'account is not active');
    const source = { clientId: meta.clientId ?? null, ip: meta.ip ?? 'unknown', requestId: meta.requestId ?? null };
    if (!(await this.#deps.login.confirm(source, row, current))) {
      throw new ServiceError('forbidden', 'current password is wrong', { field: 'current_password' });
    }
    checkPassword(this.#deps.policy, next, { email: row.email });
    await this.setPassword(id, row.passwordHash, next);
    await this.#deps.audit.record({ ...meta, type: 'password.changed', subject: id });
  }

  /** Compare-and-swap on the old hash, then revoke every grant. A pending reset link dies with the old password. */
  async setPassword(id: string, oldHash: string | null, password: string): Promise<void> {
    const passwordHash = await this.#deps.hasher.hash(password);
    const db = this.#deps.db;
    const [{ count }] = await db.$transaction([
      db.user.updateMany({ where: { id, passwordHash: oldHash }, data: { passwordHash } }),
      // Only if the swap above happened (the new hash, salted, is unique to it).
      db.passwordResetToken.deleteMany({ where: { userId: id, user: { passwordHash } } }),
    ]);
    if (count !== 1) throw new ServiceError('conflict', 'the password was changed concurrently; try again');
    await this.#deps.sessions.revokeAccount(id);
  }

  /** Counts by status, and the users still on a legacy hash (upgraded at their next login). */
  async stats(): Promise<{ total: number; by_status: Record<string, number>; legacy_hashes: number }> {
    const groups = await this.#deps.db.user.groupBy({ by: ['status'], _count: { _all: true } });
    return {
      total: groups.reduce((n, g) => n + g._count._all, 0),
      by_status: Object.fromEntries(groups.map((g) => [g.status, g._count._all])),
      legacy_hashes: await legacyHashCount(this.#deps.db),
    };
  }

  /** Is there any admin yet? (bootstrap) */
  async hasAdmin(): Promise<boolean> {
    return !!(await this.#deps.db.user.findFirst({ where: { roles: { has: 'admin' } }, select: { id: true } }));
  }

  /** One imported user (already hashed, or none): audited as user.imported. */
  async importOne(input: NewUser & { passwordHash: string | null }, meta: AuditMeta, details: Record<string, unknown>): Promise<UserView> {
    const user = await createUser(this.#deps.db, this.#deps.hasher, { ...input, roles: this.checkRoles(input.roles ?? []) });
    await this.#deps.audit.record({ ...meta, type: 'user.imported', subject: user.id, details });
    return user;
  }

  /** The user by email, for password resets (null when unknown). */
  findByEmail(email: string) {
    return this.#deps.db.user.findUnique({ where: { email } });
  }

  /** Clears the password (a forced reset) and its reset link, and ends every session. */
  async clearPassword(id: string): Promise<void> {
    const db = this.#deps.db;
    await db.$transaction([db.user.update({ where: { id }, data: { passwordHash: null } }), db.passwordResetToken.deleteMany({ where: { userId: id } })]);
    await this.#deps.sessions.revokeAccount(id);
  }
}
