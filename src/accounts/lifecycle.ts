// The user lifecycle behind the admin API, self-registration and the CLI:
// pending → active → disabled, roles from the configured list, password
// changes. Every change is audited.
//
// Revocation is decided here, in Postgres: disabling, deleting, revoking
// sessions, a password change, a reset and a forced reset each change the
// user's row (a new session generation, or no row at all) in the same
// transaction as their audit row. Every grant records the generation it was
// issued under and is dead once it differs (src/tokens/sessions.ts), so the
// change holds even if Redis is down. Deleting the dead grants from Redis
// afterwards is clean-up: its failure is logged, never the answer.
import { z } from 'zod';
import { ServiceError } from '../errors.ts';
import { Prisma } from '../generated/prisma/client.ts';
import type { Logger } from '../observability/log.ts';
import type { AuditInput, AuditLog, AuditMeta } from '../security/audit.ts';
import type { Db, Tx } from '../store/postgres.ts';
import { TRICKLE_ENDED } from './legacy-idp.ts';
import type { PasswordLogin } from './login.ts';
import type { PasswordHasher } from './passwords.ts';
import { checkPassword, type PasswordPolicy } from './policy.ts';
import { createUser, legacyHashCount, normalizeEmail, userView, type UserStatus, type UserView } from './users.ts';

/**
 * Removes what the token store still holds for an account whose grants are
 * already dead by generation (or whose row is gone). Implemented by the token
 * store (src/tokens); the composition root passes it in.
 */
export type SessionCleanup = {
  /** Deletes the account's grants from the token store; resolves to how many it removed. */
  purgeAccount(accountId: string): Promise<number>;
};

export type AccountsDeps = {
  db: Db;
  hasher: PasswordHasher;
  policy: PasswordPolicy;
  roles: readonly string[];
  sessions: SessionCleanup;
  audit: AuditLog;
  logger?: Logger;
  /** The login guard: the current password before a change is checked through it. */
  login: PasswordLogin;
};

/** One validated user of an import (see ./import.ts). */
export type ImportedUser = {
  email: string;
  roles: string[];
  status: UserStatus;
  emailVerified: boolean;
  passwordHash: string | null;
  /** For its audit row: where it was in the file, whether its hash is a legacy one. */
  details: Record<string, unknown>;
};

export type UserStats = {
  total: number;
  by_status: Record<string, number>;
  legacy_hashes: number;
  legacy_hashes_by_scheme: Record<string, number>;
  by_source: Record<string, { migrated: number; pending: number }>;
};

// The scheme of a stored legacy hash, in SQL, by the prefixes of ./hash-schemes
// (ASP.NET Core's bare base64 blobs have none, so they fall under pbkdf2).
const LEGACY_SCHEME_SQL = Prisma.sql`CASE
  WHEN password_hash LIKE '$2%' THEN 'bcrypt'
  WHEN password_hash LIKE '$argon2%' OR password_hash LIKE 'argon2$%' THEN 'argon2'
  WHEN password_hash LIKE '$scrypt$%' THEN 'scrypt'
  WHEN password_hash LIKE '$firebase-scrypt$%' THEN 'firebase-scrypt'
  WHEN password_hash LIKE '$5$%' OR password_hash LIKE '$6$%' THEN 'sha-crypt'
  WHEN password_hash LIKE '{%' THEN 'ldap-ssha'
  ELSE 'pbkdf2' END`;

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

  /**
   * Roles and/or status. pending → active is an approval (who and when are
   * kept). Leaving `active` (disabling) starts a new session generation.
   */
  async update(id: string, change: { roles?: string[]; status?: UserStatus }, meta: AuditMeta): Promise<UserView> {
    const before = await this.#row(id);
    const roles = change.roles ? this.checkRoles(change.roles) : undefined;
    const approving = before.status === 'pending' && change.status === 'active';
    const statusChanged = change.status !== undefined && change.status !== before.status;
    const ending = statusChanged && change.status !== 'active';
    const audit = this.#deps.audit;
    const row = await this.#deps.db.$atomic(async (tx) => {
      const updated = await tx.user
        .update({
          where: { id },
          data: {
            ...(roles ? { roles } : {}),
            ...(change.status ? { status: change.status } : {}),
            ...(approving ? { approvedBy: meta.actor ?? null, approvedAt: new Date() } : {}),
            ...(ending ? { sessionGeneration: { increment: 1 } } : {}),
          },
        })
        .catch(rowGone);
      if (roles && roles.join(' ') !== before.roles.join(' ')) {
        await audit.recordIn(tx, { ...meta, type: 'user.roles_changed', subject: id, details: { from: before.roles, to: roles } });
      }
      if (statusChanged) {
        const type = approving ? 'user.approved' : change.status === 'disabled' ? 'user.disabled' : 'user.updated';
        await audit.recordIn(tx, { ...meta, type, subject: id, details: { from: before.status, to: change.status } });
      }
      return updated;
    });
    if (ending) await this.#cleanUp(id);
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
    await this.#deps.db.$atomic(async (tx) => {
      await tx.user.delete({ where: { id } }).catch(rowGone);
      await this.#deps.audit.recordIn(tx, { ...meta, type: 'user.deleted', subject: id, details: { email: row.email } });
    });
    await this.#cleanUp(id);
  }

  /** Ends every session of the user: a new generation; resolves to how many grants were cleaned up from Redis. */
  async revokeSessions(id: string, meta: AuditMeta): Promise<number> {
    if (!z.uuid().safeParse(id).success) throw notFound();
    await this.#deps.db.$atomic(async (tx) => {
      const row = await tx.user.update({ where: { id }, data: { sessionGeneration: { increment: 1 } } }).catch(rowGone);
      await this.#deps.audit.recordIn(tx, {
        ...meta,
        type: 'user.sessions_revoked',
        subject: id,
        details: { generation: row.sessionGeneration },
      });
    });
    return this.#cleanUp(id);
  }

  /**
   * A logged-in user's own change: needs the current password, checked by
   * the login guard (same limits, hash gate and events as the password
   * grant; throttled looks exactly like wrong). Ends every session.
   */
  async changePassword(id: string, current: string, next: string, meta: AuditMeta): Promise<void> {
    const row = await this.#row(id);
    if (row.status !== 'active') throw new ServiceError('forbidden', 'account is not active');
    const source = { clientId: meta.clientId ?? null, ip: meta.ip ?? 'unknown', requestId: meta.requestId ?? null };
    if (!(await this.#deps.login.confirm(source, row, current))) {
      throw new ServiceError('forbidden', 'current password is wrong', { field: 'current_password' });
    }
    checkPassword(this.#deps.policy, next, { email: row.email });
    await this.setPassword(id, row.passwordHash, next, { ...meta, type: 'password.changed', subject: id });
  }

  /**
   * Sets a password with a compare-and-swap on the old hash, a new session
   * generation and `event`'s audit row, in one transaction (`alsoInTx` adds
   * statements to it, e.g. a reset token's single use); then cleans Redis up.
   * A pending reset link dies with the old password, in the same transaction.
   */
  async setPassword(id: string, oldHash: string | null, password: string, event: AuditInput, alsoInTx?: (tx: Tx) => Promise<void>): Promise<void> {
    const passwordHash = await this.#deps.hasher.hash(password);
    await this.#deps.db.$atomic(async (tx) => {
      await alsoInTx?.(tx);
      const { count } = await tx.user.updateMany({
        where: { id, passwordHash: oldHash },
        data: { passwordHash, sessionGeneration: { increment: 1 } },
      });
      if (count !== 1) throw new ServiceError('conflict', 'the password was changed concurrently; try again');
      await tx.passwordResetToken.deleteMany({ where: { userId: id } });
      await this.#deps.audit.recordIn(tx, event);
    });
    await this.#cleanUp(id);
  }

  /** Counts by status, and the users still on a legacy hash (upgraded at their next login). */
  async stats(): Promise<UserStats> {
    const db = this.#deps.db;
    const groups = await db.user.groupBy({ by: ['status'], _count: { _all: true } });
    // Migrated: an argon2id hash written here. Pending: a legacy hash not yet
    // upgraded by a login, or no hash (waiting for the legacy provider or a reset).
    const sources = await db.$queryRaw<{ source: string; migrated: boolean; n: number }[]>`
      SELECT import_source AS source, coalesce(password_hash LIKE '$argon2id$%', false) AS migrated, count(*)::int AS n
      FROM users WHERE import_source IS NOT NULL GROUP BY 1, 2`;
    const schemes = await db.$queryRaw<{ scheme: string; n: number }[]>`
      SELECT ${LEGACY_SCHEME_SQL} AS scheme, count(*)::int AS n
      FROM users WHERE password_hash IS NOT NULL AND password_hash NOT LIKE '$argon2id$%' GROUP BY 1`;
    const bySource: UserStats['by_source'] = {};
    for (const { source, migrated, n } of sources) {
      const entry = (bySource[source] ??= { migrated: 0, pending: 0 });
      entry[migrated ? 'migrated' : 'pending'] += n;
    }
    return {
      total: groups.reduce((n, g) => n + g._count._all, 0),
      by_status: Object.fromEntries(groups.map((g) => [g.status, g._count._all])),
      legacy_hashes: await legacyHashCount(db),
      legacy_hashes_by_scheme: Object.fromEntries(schemes.map((r) => [r.scheme, r.n])),
      by_source: bySource,
    };
  }

  /** Ends the trickle migration for every replica (durable); the users still pending, by source. */
  async endTrickle(meta: AuditMeta): Promise<{ ended: true; pending: Record<string, number> }> {
    await this.#deps.db.serviceSetting.upsert({
      where: { key: TRICKLE_ENDED },
      create: { key: TRICKLE_ENDED, value: { by: meta.actor ?? null } },
      update: {},
    });
    const { by_source } = await this.stats();
    return { ended: true, pending: Object.fromEntries(Object.entries(by_source).map(([s, c]) => [s, c.pending])) };
  }

  /** Is there any admin yet? (bootstrap) */
  async hasAdmin(): Promise<boolean> {
    return !!(await this.#deps.db.user.findFirst({ where: { roles: { has: 'admin' } }, select: { id: true } }));
  }

  /** The configured roles (importers keep only these). */
  get roles(): readonly string[] {
    return this.#deps.roles;
  }

  /**
   * Imported users, already validated (normalized email, configured roles,
   * an accepted hash or none), in one transaction with one `user.imported`
   * audit row each. An address that already exists is skipped, never
   * overwritten: a re-run changes nothing, and a hash a login has upgraded
   * stays. Resolves to how many were created.
   */
  async importBatch(records: readonly ImportedUser[], source: string, meta: AuditMeta): Promise<number> {
    if (!records.length) return 0;
    // One statement per batch (Prisma's createMany spent most of an import
    // building parameters): the users, and an audit row for each one
    // actually created, commit together. The audit columns are those of
    // AuditLog.recordIn.
    const column = <K extends keyof ImportedUser>(key: K) => records.map((r) => r[key]);
    const [{ created }] = await this.#deps.db.$queryRaw<[{ created: number }]>`
      WITH input AS (
        SELECT * FROM unnest(${column('email')}::text[], ${column('passwordHash')}::text[], ${records.map((r) => JSON.stringify(r.roles))}::text[],
                             ${column('status')}::text[], ${column('emailVerified')}::boolean[], ${records.map((r) => JSON.stringify({ source, ...r.details }))}::text[])
          AS t(email, password_hash, roles, status, email_verified, details)
      ), created AS (
        INSERT INTO users (id, email, password_hash, roles, status, email_verified, import_source, updated_at)
        SELECT gen_random_uuid(), email, password_hash, ARRAY(SELECT jsonb_array_elements_text(roles::jsonb)), status::"UserStatus", email_verified, ${source}, now()
        FROM input
        ON CONFLICT (email) DO NOTHING
        RETURNING id, email
      ), audited AS (
        INSERT INTO audit_events (type, outcome, actor, subject, client_id, ip, request_id, details)
        SELECT 'user.imported', 'success', ${meta.actor ?? null}, created.id::text, ${meta.clientId ?? null}, ${meta.ip ?? null}, ${meta.requestId ?? null}, input.details::jsonb
        FROM created JOIN input USING (email)
        RETURNING 1
      )
      SELECT count(*)::int AS created FROM audited`;
    return created;
  }


  /** The user by email, for password resets (null when unknown). */
  findByEmail(email: string) {
    return this.#deps.db.user.findUnique({ where: { email } });
  }

  /** Clears the password (a forced reset) and its reset link, and ends every session, audited as `event` in the same transaction. */
  async clearPassword(id: string, event: AuditInput): Promise<void> {
    await this.#deps.db.$atomic(async (tx) => {
      await tx.user.update({ where: { id }, data: { passwordHash: null, sessionGeneration: { increment: 1 } } }).catch(rowGone);
      await tx.passwordResetToken.deleteMany({ where: { userId: id } });
      await this.#deps.audit.recordIn(tx, event);
    });
    await this.#cleanUp(id);
  }

  // The revocation is committed; what Redis still holds is garbage that the
  // generation check already refuses. A failure here is logged, not answered.
  async #cleanUp(id: string): Promise<number> {
    try {
      return await this.#deps.sessions.purgeAccount(id);
    } catch (err) {
      this.#deps.logger?.warn({ err: { message: (err as Error).message }, subject: id }, 'session clean-up failed; the sessions are revoked');
      return 0;
    }
  }
}

const rowGone = (err: { code?: string }): never => {
  if (err.code === 'P2025') throw notFound();
  throw err;
};
