// Audit events in Postgres: time, type, outcome/reason, actor, subject,
// client, IP and request id. Callers pass codes and ids only, never a
// password, token or secret. Writing an event never fails the action it
// records (a failed insert is logged and dropped), except for revocations,
// which write theirs in the same transaction as the change (recordIn).
import type { Prisma } from '../generated/prisma/client.ts';
import type { Logger } from '../observability/log.ts';
import type { Db, Tx } from '../store/postgres.ts';

export const AUDIT_TYPES = [
  'login.success',
  'login.failure',
  'refresh.reuse_detected',
  'user.created',
  'user.registered',
  'user.registration_refused',
  'user.approved',
  'user.updated',
  'user.roles_changed',
  'user.disabled',
  'user.deleted',
  'user.sessions_revoked',
  'user.imported',
  'password.changed',
  'password.reset_requested',
  'password.reset',
  'password.reset_forced',
  'client.created',
  'client.updated',
  'client.secret_rotated',
  'client.deleted',
  'key.created',
  'key.activated',
  'key.retired',
  'key.rotated',
  'key.revoked',
  'key.rekeyed',
  'key.algorithm_set',
  'mfa.enrolled',
  'mfa.challenge_passed',
  'mfa.challenge_failed',
  'mfa.recovery_code_used',
  'mfa.disabled',
  'mfa.reset',
] as const;
export type AuditType = (typeof AUDIT_TYPES)[number];

/** Who and where: filled from the HTTP request, or `{actor: 'cli'}` / `{actor: 'bootstrap'}`. */
export type AuditMeta = { actor?: string | null; clientId?: string | null; ip?: string | null; requestId?: string | null };

export type AuditInput = AuditMeta & {
  type: AuditType;
  outcome?: 'success' | 'failure';
  reason?: string;
  subject?: string | null;
  details?: Record<string, unknown>;
};

export type AuditView = {
  id: string;
  time: string;
  type: string;
  outcome: string;
  reason: string | null;
  actor: string | null;
  subject: string | null;
  client_id: string | null;
  ip: string | null;
  request_id: string | null;
  details: unknown;
};

function auditRow(event: AuditInput) {
  return {
    type: event.type,
    outcome: event.outcome ?? 'success',
    reason: event.reason ?? null,
    actor: event.actor ?? null,
    subject: event.subject ?? null,
    clientId: event.clientId ?? null,
    ip: event.ip ?? null,
    requestId: event.requestId ?? null,
    ...(event.details ? { details: event.details as Prisma.InputJsonValue } : {}),
  };
}

export class AuditLog {
  readonly #db: Db;
  readonly #logger: Logger | undefined;

  constructor(db: Db, logger?: Logger) {
    this.#db = db;
    this.#logger = logger;
  }

  async record(event: AuditInput): Promise<void> {
    try {
      await this.recordIn(this.#db, event);
    } catch (err) {
      this.#logger?.error({ err: { message: (err as Error).message }, type: event.type }, 'audit event not recorded');
    }
  }

  /**
   * Writes the event inside the caller's transaction: the change and its
   * audit row commit together or not at all (a failure propagates).
   */
  async recordIn(tx: Tx | Db, event: AuditInput): Promise<void> {
    await tx.auditEvent.create({ data: auditRow(event) });
  }

  /** Many events in one statement, inside the caller's transaction (bulk import). */
  async recordManyIn(tx: Tx | Db, events: readonly AuditInput[]): Promise<void> {
    if (events.length) await tx.auditEvent.createMany({ data: events.map(auditRow) });
  }

  /** Newest first; `before` is the id of the last event of the previous page. */
  async list(filter: {
    type?: string;
    actor?: string;
    subject?: string;
    clientId?: string;
    outcome?: string;
    since?: Date;
    until?: Date;
    before?: bigint;
    limit: number;
  }): Promise<{ items: AuditView[]; next: string | null }> {
    const rows = await this.#db.auditEvent.findMany({
      where: {
        type: filter.type,
        actor: filter.actor,
        subject: filter.subject,
        clientId: filter.clientId,
        outcome: filter.outcome,
        time: { gte: filter.since, lt: filter.until },
        ...(filter.before !== undefined ? { id: { lt: filter.before } } : {}),
      },
      orderBy: { id: 'desc' },
      take: filter.limit + 1,
    });
    const page = rows.slice(0, filter.limit);
    return {
      items: page.map((r) => ({
        id: r.id.toString(),
        time: r.time.toISOString(),
        type: r.type,
        outcome: r.outcome,
        reason: r.reason,
        actor: r.actor,
        subject: r.subject,
        client_id: r.clientId,
        ip: r.ip,
        request_id: r.requestId,
        details: r.details ?? null,
      })),
      next: rows.length > filter.limit ? page.at(-1)!.id.toString() : null,
    };
  }
}
