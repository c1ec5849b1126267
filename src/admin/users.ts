// /admin/users: list (paging, filter), get, create, update roles/status,
// approve, delete, revoke sessions, force a password reset, bulk import,
// legacy-hash figure.
import express, { Router } from 'express';
import { z } from 'zod';
import type { ZodOpenApiPathsObject } from 'zod-openapi';
import { importUsers } from '../accounts/import.ts';
import type { Accounts } from '../accounts/lifecycle.ts';
import type { PasswordResets } from '../accounts/reset.ts';
import { ADMIN_ERRORS, auditMeta, errorResponses, json, parse } from './validate.ts';

const status = z.enum(['pending', 'active', 'disabled']);
const userId = z.object({ id: z.uuid().meta({ description: 'user id' }) });

export const userSchema = z
  .object({
    id: z.uuid(),
    email: z.email(),
    roles: z.array(z.string()),
    status,
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
    approved_by: z.string().optional().meta({ description: 'subject of the admin who approved a pending user' }),
    approved_at: z.iso.datetime().optional(),
  })
  .meta({ id: 'User' });

const listQuery = z.strictObject({
  status: status.optional(),
  role: z.string().max(64).optional(),
  email: z.string().max(320).optional().meta({ description: 'substring of the (normalized) email' }),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
});

const createBody = z
  .strictObject({
    email: z.email().max(320),
    password: z.string().optional().meta({ description: 'omit to create a user who sets a password by reset' }),
    roles: z.array(z.string()).max(64).default([]),
    status: status.default('active'),
  })
  .meta({ id: 'UserCreate' });

const updateBody = z
  .strictObject({ roles: z.array(z.string()).max(64).optional(), status: status.optional() })
  .refine((b) => b.roles !== undefined || b.status !== undefined, 'give roles and/or status')
  .meta({ id: 'UserUpdate' });

const importReport = z
  .object({
    created: z.number().int(),
    failed: z.number().int(),
    errors: z.array(z.object({ line: z.number().int(), error: z.string(), field: z.string().optional(), message: z.string() })),
  })
  .meta({ id: 'ImportReport' });

const forceResetResult = z.object({
  email_sent: z.boolean(),
  reset_url: z.string().optional().meta({ description: 'only when SMTP is not configured: hand it to the user' }),
});

const tags = ['users'];
export const usersPaths: ZodOpenApiPathsObject = {
  '/admin/users': {
    get: {
      operationId: 'listUsers',
      summary: 'List users, filtered and paged',
      tags,
      requestParams: { query: listQuery },
      responses: {
        '200': json(
          z.object({ items: z.array(userSchema), total: z.number().int(), limit: z.number().int(), offset: z.number().int() }),
          'A page of users',
        ),
        ...errorResponses(...ADMIN_ERRORS),
      },
    },
    post: {
      operationId: 'createUser',
      summary: 'Create a user (the password must pass the policy)',
      tags,
      requestBody: { content: { 'application/json': { schema: createBody } } },
      responses: { '201': json(userSchema, 'Created'), ...errorResponses(...ADMIN_ERRORS, 409) },
    },
  },
  '/admin/users/import': {
    post: {
      operationId: 'importUsers',
      summary: 'Import users from NDJSON; bad lines are reported, not fatal',
      tags,
      requestBody: {
        content: {
          'application/x-ndjson': {
            schema: z.string().meta({
              description: 'one JSON object a line: {email, roles?, status?, password_hash? (bcrypt or argon2, or null)}',
            }),
          },
        },
      },
      responses: { '200': json(importReport, 'Per-line report'), ...errorResponses(...ADMIN_ERRORS) },
    },
  },
  '/admin/users/stats': {
    get: {
      operationId: 'userStats',
      summary: 'Counts by status and the number of legacy (bcrypt) hashes',
      tags,
      responses: {
        '200': json(
          z.object({ total: z.number().int(), by_status: z.record(z.string(), z.number().int()), legacy_hashes: z.number().int() }),
          'Figures',
        ),
        ...errorResponses(401, 403),
      },
    },
  },
  '/admin/users/{id}': {
    get: {
      operationId: 'getUser',
      summary: 'Get one user',
      tags,
      requestParams: { path: userId },
      responses: { '200': json(userSchema, 'The user'), ...errorResponses(...ADMIN_ERRORS, 404) },
    },
    patch: {
      operationId: 'updateUser',
      summary: 'Change roles and/or status (disabling revokes every grant)',
      tags,
      requestParams: { path: userId },
      requestBody: { content: { 'application/json': { schema: updateBody } } },
      responses: { '200': json(userSchema, 'Updated'), ...errorResponses(...ADMIN_ERRORS, 404) },
    },
    delete: {
      operationId: 'deleteUser',
      summary: 'Delete a user and revoke every grant',
      tags,
      requestParams: { path: userId },
      responses: { '204': { description: 'Deleted' }, ...errorResponses(...ADMIN_ERRORS, 404) },
    },
  },
  '/admin/users/{id}/approve': {
    post: {
      operationId: 'approveUser',
      summary: 'Approve a pending user (records who and when)',
      tags,
      requestParams: { path: userId },
      responses: { '200': json(userSchema, 'Approved'), ...errorResponses(...ADMIN_ERRORS, 404, 409) },
    },
  },
  '/admin/users/{id}/revoke-sessions': {
    post: {
      operationId: 'revokeUserSessions',
      summary: "Revoke all of the user's grants (refresh tokens)",
      tags,
      requestParams: { path: userId },
      responses: { '200': json(z.object({ revoked: z.number().int() }), 'Revoked'), ...errorResponses(...ADMIN_ERRORS, 404) },
    },
  },
  '/admin/users/{id}/reset-password': {
    post: {
      operationId: 'forcePasswordReset',
      summary: 'Force a reset: the password stops working, grants are revoked, a reset link is emailed',
      tags,
      requestParams: { path: userId },
      responses: { '200': json(forceResetResult, 'Reset started'), ...errorResponses(...ADMIN_ERRORS, 404) },
    },
  },
};

export function usersRouter(accounts: Accounts, resets: PasswordResets): Router {
  const r = Router();
  const id = (params: unknown) => parse(userId, params).id;

  r.get('/users', async (req, res) => {
    const q = parse(listQuery, req.query);
    const page = await accounts.list(q);
    res.json({ ...page, limit: q.limit, offset: q.offset });
  });
  r.post('/users', async (req, res) => {
    const body = parse(createBody, req.body);
    res.status(201).json(await accounts.create(body, auditMeta(req, res)));
  });
  r.post(
    '/users/import',
    express.text({ type: ['application/x-ndjson', 'application/jsonl', 'text/plain'], limit: '10mb' }),
    async (req, res) => {
      const text = parse(z.string(), req.body);
      res.json(await importUsers(accounts, text, auditMeta(req, res)));
    },
  );
  r.get('/users/stats', async (_req, res) => {
    const groups = await accounts.deps.db.user.groupBy({ by: ['status'], _count: { _all: true } });
    const by_status = Object.fromEntries(groups.map((g) => [g.status, g._count._all]));
    const total = groups.reduce((n, g) => n + g._count._all, 0);
    res.json({ total, by_status, legacy_hashes: await accounts.legacyHashCount() });
  });
  r.get('/users/:id', async (req, res) => {
    res.json(await accounts.get(id(req.params)));
  });
  r.patch('/users/:id', async (req, res) => {
    const userIdValue = id(req.params);
    res.json(await accounts.update(userIdValue, parse(updateBody, req.body), auditMeta(req, res)));
  });
  r.delete('/users/:id', async (req, res) => {
    await accounts.delete(id(req.params), auditMeta(req, res));
    res.status(204).end();
  });
  r.post('/users/:id/approve', async (req, res) => {
    res.json(await accounts.approve(id(req.params), auditMeta(req, res)));
  });
  r.post('/users/:id/revoke-sessions', async (req, res) => {
    res.json({ revoked: await accounts.revokeSessions(id(req.params), auditMeta(req, res)) });
  });
  r.post('/users/:id/reset-password', async (req, res) => {
    res.json(await resets.force(id(req.params), auditMeta(req, res)));
  });
  return r;
}
