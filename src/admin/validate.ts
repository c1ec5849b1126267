// Shared pieces of the JSON APIs: zod parsing into ServiceError
// (validation_failed + the failing field), the audit context of a request,
// and the OpenAPI fragments every operation repeats.
import { randomUUID } from 'node:crypto';
import type { Request, Response } from 'express';
import { z } from 'zod';
import type { ZodOpenApiResponsesObject } from 'zod-openapi';
import type { AuditMeta } from '../accounts/audit.ts';
import { ServiceError } from '../errors.ts';
import type { Caller } from './auth.ts';

export function parse<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field =
    issue.path.map(String).join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(',') : 'body');
  throw new ServiceError('validation_failed', `${field}: ${issue.message}`, { field });
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Who did it (the token's subject) and from where, for the audit log. */
export function auditMeta(req: Request, res: Response): AuditMeta {
  const caller = res.locals.caller as Caller | undefined;
  const header = req.get('x-request-id');
  const id = (req as { id?: unknown }).id;
  const requestId = header && REQUEST_ID.test(header) ? header : id !== undefined ? String(id) : randomUUID();
  return { actor: caller?.sub ?? null, clientId: caller?.clientId ?? null, ip: req.ip ?? null, requestId };
}

export const errorBody = z
  .object({
    error: z.string().meta({ description: 'stable machine-readable code', example: 'validation_failed' }),
    message: z.string(),
    field: z.string().optional().meta({ description: 'the request field that failed validation' }),
  })
  .meta({ id: 'Error' });

const STATUS_TEXT = {
  400: 'Invalid input (validation_failed, with the failing field)',
  401: 'Missing or invalid Bearer access token',
  403: 'The token does not carry the required role',
  404: 'No such resource',
  409: 'Conflict (duplicate, or wrong state)',
} as const;

export function errorResponses(...codes: (keyof typeof STATUS_TEXT)[]): ZodOpenApiResponsesObject {
  return Object.fromEntries(
    codes.map((c) => [String(c), { description: STATUS_TEXT[c], content: { 'application/json': { schema: errorBody } } }]),
  );
}

export const ADMIN_ERRORS = [400, 401, 403] as const;

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});
