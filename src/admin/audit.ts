// /admin/audit: audit events, newest first, filtered, paged by id.
import { Router } from 'express';
import { z } from 'zod';
import type { ZodOpenApiPathsObject } from 'zod-openapi';
import { AUDIT_TYPES, type AuditLog } from '../accounts/audit.ts';
import { ADMIN_ERRORS, errorResponses, json, parse } from './validate.ts';

const query = z.strictObject({
  type: z.enum(AUDIT_TYPES).optional(),
  outcome: z.enum(['success', 'failure']).optional(),
  actor: z.string().max(256).optional(),
  subject: z.string().max(256).optional(),
  client_id: z.string().max(64).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  before: z.string().regex(/^\d{1,19}$/).optional().meta({ description: '`next` of the previous page' }),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

const event = z
  .object({
    id: z.string(),
    time: z.iso.datetime(),
    type: z.string(),
    outcome: z.enum(['success', 'failure']),
    reason: z.string().nullable().meta({ description: 'failure reason code, e.g. bad_password' }),
    actor: z.string().nullable().meta({ description: 'subject of the admin or user who acted' }),
    subject: z.string().nullable().meta({ description: 'user id or client id acted upon' }),
    client_id: z.string().nullable(),
    ip: z.string().nullable(),
    request_id: z.string().nullable(),
    details: z.unknown(),
  })
  .meta({ id: 'AuditEvent' });

export const auditPaths: ZodOpenApiPathsObject = {
  '/admin/audit': {
    get: {
      operationId: 'listAuditEvents',
      summary: 'List audit events, newest first',
      tags: ['audit'],
      requestParams: { query },
      responses: {
        '200': json(z.object({ items: z.array(event), next: z.string().nullable() }), 'A page of events'),
        ...errorResponses(...ADMIN_ERRORS),
      },
    },
  },
};

export function auditRouter(audit: AuditLog): Router {
  const r = Router();
  r.get('/audit', async (req, res) => {
    const q = parse(query, req.query);
    res.json(
      await audit.list({
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
    );
  });
  return r;
}
