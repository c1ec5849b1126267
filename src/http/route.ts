// Each JSON route is declared once, with its zod schemas: the express router
// (parsing, validation, authorization, audit context, status) and the OpenAPI
// 3.1 document are both generated from that one declaration.
import express, { Router, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import type { ZodOpenApiOperationObject, ZodOpenApiPathsObject, ZodOpenApiResponsesObject } from 'zod-openapi';
import { ServiceError } from '../errors.ts';
import type { AuditMeta } from '../security/audit.ts';
import { requestId } from './request-id.ts';

/** The authenticated caller of a bearer-protected route. */
export type Caller = { sub: string; roles: string[]; clientId: string | undefined };

/** admin: a Bearer token of an admin; user: any user's Bearer token; enroll: that, or an mfa_token that must enroll; public: none. */
export type Auth = 'admin' | 'user' | 'enroll' | 'public';

type Status = 200 | 201 | 202 | 204;
type ErrorStatus = 403 | 404 | 409 | 413 | 429;

export type RouteInput<P, Q, B> = { params: P; query: Q; body: B; meta: AuditMeta; caller: Caller | undefined };

export type Route<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType> = {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** OpenAPI form: /admin/users/{id}. */
  path: string;
  operationId: string;
  summary: string;
  /** Longer OpenAPI description, when the summary is not enough. */
  description?: string;
  tags: string[];
  auth: Auth;
  params?: P;
  query?: Q;
  body?: B;
  /** application/json (default, up to 64 kB) or NDJSON text (up to 10 MB). */
  bodyType?: 'json' | 'ndjson';
  /** OpenAPI `servers` override (the self-service routes live on the public port). */
  servers?: { url: string; description: string }[];
  response: { status: Status; description: string; schema?: z.ZodType };
  /** Error statuses beyond those the declaration implies (400, 401, 403, 503, 500). */
  errors?: ErrorStatus[];
  handle(input: RouteInput<z.output<P>, z.output<Q>, z.output<B>>): Promise<unknown>;
};

/** Declares a route (an identity function that keeps the schemas' types). */
export function route<P extends z.ZodType = z.ZodUndefined, Q extends z.ZodType = z.ZodUndefined, B extends z.ZodType = z.ZodUndefined>(
  spec: Route<P, Q, B>,
): Route {
  return spec as unknown as Route;
}

/** Parses `value` with `schema`; the first issue becomes validation_failed naming its field. */
export function parse<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = issue.path.map(String).join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(',') : 'body');
  throw new ServiceError('validation_failed', `${field}: ${issue.message}`, { field });
}

/** Who did it (the token's subject and client) and from where, for the audit log. */
export function auditMeta(req: Request, res: Response): AuditMeta {
  const caller = res.locals.caller as Caller | undefined;
  return { actor: caller?.sub ?? null, clientId: caller?.clientId ?? null, ip: req.ip ?? null, requestId: requestId(req, res) };
}

const expressPath = (path: string) => path.replace(/\{(\w+)\}/g, ':$1');

const BODY_PARSERS = {
  json: express.json({ limit: '64kb', strict: true }),
  ndjson: express.text({ type: ['application/x-ndjson', 'application/jsonl', 'text/plain'], limit: '10mb' }),
};

/**
 * The express router for `routes`. `guards` authenticate admin and user
 * routes and leave the caller in res.locals.caller.
 */
export function routerFor(routes: readonly Route[], guards: Record<Exclude<Auth, 'public'>, RequestHandler>): Router {
  const r = Router();
  for (const spec of routes) {
    const steps: RequestHandler[] = [];
    if (spec.auth !== 'public') steps.push(guards[spec.auth]);
    if (spec.body) steps.push(BODY_PARSERS[spec.bodyType ?? 'json']);
    steps.push(async (req, res) => {
      const input = {
        params: spec.params ? parse(spec.params, req.params) : undefined,
        query: spec.query ? parse(spec.query, req.query) : undefined,
        body: spec.body ? parse(spec.body, req.body) : undefined,
        meta: auditMeta(req, res),
        caller: res.locals.caller as Caller | undefined,
      };
      const out = await spec.handle(input);
      res.status(spec.response.status);
      if (spec.response.status === 204) res.end();
      else res.json(out);
    });
    r[spec.method](expressPath(spec.path), ...steps);
  }
  return r;
}

export const errorBody = z
  .object({
    error: z.string().meta({ description: 'stable machine-readable code (src/errors.ts)', example: 'validation_failed' }),
    error_description: z.string().meta({ description: 'for humans; may change' }),
    field: z.string().optional().meta({ description: 'the request field that failed validation' }),
    request_id: z.string().optional().meta({ description: 'on 500 only: quote it when reporting the problem' }),
  })
  .meta({ id: 'Error' });

const STATUS_TEXT: Record<number, string> = {
  400: 'Invalid input: validation_failed (with the failing field) or invalid_request',
  401: 'Missing or invalid Bearer access token (unauthorized, invalid_token), with a WWW-Authenticate challenge',
  403: 'insufficient_scope (the token lacks the role) or forbidden',
  404: 'not_found',
  409: 'conflict: duplicate, or wrong state',
  413: 'payload_too_large',
  415: 'unsupported_media_type: the body must be UTF-8, not compressed',
  429: 'rate_limited, with Retry-After',
  500: 'server_error, with the request_id',
  503: 'temporarily_unavailable: a store is unreachable, with Retry-After',
};

function errorResponses(spec: Route): ZodOpenApiResponsesObject {
  const codes = new Set<number>([...(spec.errors ?? []), 500, 503]);
  if (spec.params || spec.query || spec.body) codes.add(400);
  if (spec.body) codes.add(415).add(413);
  if (spec.auth !== 'public') codes.add(401);
  if (spec.auth === 'admin') codes.add(403);
  return Object.fromEntries(
    [...codes].sort().map((c) => [String(c), { description: STATUS_TEXT[c]!, content: { 'application/json': { schema: errorBody } } }]),
  );
}

export function openApiPaths(routes: readonly Route[]): ZodOpenApiPathsObject {
  const paths: ZodOpenApiPathsObject = {};
  for (const spec of routes) {
    const { status, description, schema } = spec.response;
    const operation: ZodOpenApiOperationObject = {
      operationId: spec.operationId,
      summary: spec.summary,
      ...(spec.description ? { description: spec.description } : {}),
      tags: spec.tags,
      ...(spec.auth === 'public' ? { security: [] } : {}),
      ...(spec.params || spec.query
        ? { requestParams: { ...(spec.params ? { path: spec.params as never } : {}), ...(spec.query ? { query: spec.query as never } : {}) } }
        : {}),
      ...(spec.body
        ? {
            requestBody: {
              content:
                spec.bodyType === 'ndjson'
                  ? { 'application/x-ndjson': { schema: z.string().meta({ description: 'one JSON object a line' }) } }
                  : { 'application/json': { schema: spec.body } },
            },
          }
        : {}),
      responses: {
        [String(status)]: schema ? { description, content: { 'application/json': { schema } } } : { description },
        ...errorResponses(spec),
      },
    };
    paths[spec.path] = { ...paths[spec.path], ...(spec.servers ? { servers: spec.servers } : {}), [spec.method]: operation };
  }
  return paths;
}
