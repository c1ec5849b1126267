// /admin/audit: audit events, newest first, filtered, paged by id.
import { z } from 'zod';
import { route } from '../http/route.ts';
import { AUDIT_TYPES, type AuditLog } from '../security/audit.ts';

// Audit ids are Postgres bigints: a larger cursor is a 400, not a database error.
const MAX_BIGINT = 2n ** 63n - 1n;

const query = z.strictObject({
  type: z.enum(AUDIT_TYPES).optional(),
  outcome: z.enum(['success', 'failure']).optional(),
  actor: z.string().max(256).optional(),
  subject: z.string().max(256).optional(),
  client_id: z.string().max(64).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  before: z
    .string()
    .regex(/^\d{1,19}$/)
    .refine((v) => BigInt(v) <= MAX_BIGINT, 'must be at most 9223372036854775807')
    .optional()
    .meta({ description: '`next` of the previous page' }),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

const event = z
  .object({
    id: z.string(),
    time: z.iso.datetime(),
    type: z.string(),
    outcome: z.enum(['success', 'failure']),
    reason: z.string().nullable().meta({ description: 'failure reason code, e.g. bad_password' }),
    actor: z.string().nullable().meta({ description: 'subject of the admin or user who acted; cli or bootstrap' }),
    subject: z.string().nullable().meta({ description: 'user id, client id or key id acted upon' }),
    client_id: z.string().nullable(),
    ip: z.string().nullable(),
    request_id: z.string().nullable(),
    details: z.unknown(),
  })
  .meta({ id: 'AuditEvent' });

export function auditRoutes(audit: AuditLog) {
  return [
    route({
      method: 'get',
      path: '/admin/audit',
      operationId: 'listAuditEvents',
      summary: 'List audit events, newest first',
      tags: ['audit'],
      auth: 'admin',
      query,
      response: { status: 200, description: 'A page of events', schema: z.object({ items: z.array(event), next: z.string().nullable() }) },
      handle: ({ query: q }) =>
        audit.list({
          type: q.type,
          outcome: q.outcome,
          actor: q.actor,
          subject: q.subject,
          clientId: q.client_id,
          since: q.since ? new Date(q.since) : undefined,
          until: q.until ? new Date(q.until) : undefined,
          before: q.before ? BigInt(q.before) : undefined,
          limit: q.limit,
        }),
    }),
  ];
}
