// /admin/users: list (paging, filter), get, create, update roles/status,
// approve, delete, revoke sessions, force a password reset, bulk import,
// figures. Auditing happens in the accounts layer.
import { z } from 'zod';
import { importUsers, MAX_IMPORT_LINES } from '../accounts/import.ts';
import type { Accounts } from '../accounts/lifecycle.ts';
import type { PasswordResets } from '../accounts/reset.ts';
import { route } from '../http/route.ts';

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
    skipped: z.number().int().meta({ description: 'Addresses that already exist: left as they are (a re-run changes nothing)' }),
    failed: z.number().int(),
    errors: z.array(
      z.object({ line: z.number().int().optional(), record: z.number().int().optional(), error: z.string(), field: z.string().optional(), message: z.string() }),
    ),
  })
  .meta({ id: 'ImportReport' });

const tags = ['users'];

export function userRoutes(accounts: Accounts, resets: PasswordResets) {
  return [
    route({
      method: 'get',
      path: '/admin/users',
      operationId: 'listUsers',
      summary: 'List users, filtered and paged',
      tags,
      auth: 'admin',
      query: listQuery,
      response: {
        status: 200,
        description: 'A page of users',
        schema: z.object({ items: z.array(userSchema), total: z.number().int(), limit: z.number().int(), offset: z.number().int() }),
      },
      handle: async ({ query }) => ({ ...(await accounts.list(query)), limit: query.limit, offset: query.offset }),
    }),
    route({
      method: 'post',
      path: '/admin/users',
      operationId: 'createUser',
      summary: 'Create a user (the password must pass the policy)',
      tags,
      auth: 'admin',
      body: createBody,
      response: { status: 201, description: 'Created', schema: userSchema },
      errors: [409],
      handle: ({ body, meta }) => accounts.create(body, meta),
    }),
    route({
      method: 'post',
      path: '/admin/users/import',
      operationId: 'importUsers',
      summary: 'Import users from NDJSON: {email, roles?, status?, email_verified?, password_hash? (see README "Bulk import" for the schemes), or null} a line; bad lines are reported, not fatal; existing addresses are skipped',
      tags,
      auth: 'admin',
      body: z.string(),
      bodyType: 'ndjson',
      response: { status: 200, description: 'Per-line report', schema: importReport },
      handle: ({ body, meta }) => importUsers(accounts, body, meta, { maxRecords: MAX_IMPORT_LINES }),
    }),
    route({
      method: 'get',
      path: '/admin/users/stats',
      operationId: 'userStats',
      summary: 'Counts by status, legacy (not argon2id) hashes by scheme, imported users migrated/pending by source',
      tags,
      auth: 'admin',
      response: {
        status: 200,
        description: 'Figures',
        schema: z.object({
          total: z.number().int(),
          by_status: z.record(z.string(), z.number().int()),
          legacy_hashes: z.number().int(),
          legacy_hashes_by_scheme: z.record(z.string(), z.number().int()),
          by_source: z.record(z.string(), z.object({ migrated: z.number().int(), pending: z.number().int() })),
        }),
      },
      handle: () => accounts.stats(),
    }),
    route({
      method: 'get',
      path: '/admin/users/{id}',
      operationId: 'getUser',
      summary: 'Get one user',
      tags,
      auth: 'admin',
      params: userId,
      response: { status: 200, description: 'The user', schema: userSchema },
      errors: [404],
      handle: ({ params }) => accounts.get(params.id),
    }),
    route({
      method: 'patch',
      path: '/admin/users/{id}',
      operationId: 'updateUser',
      summary: 'Change roles and/or status (disabling revokes every grant)',
      tags,
      auth: 'admin',
      params: userId,
      body: updateBody,
      response: { status: 200, description: 'Updated', schema: userSchema },
      errors: [404],
      handle: ({ params, body, meta }) => accounts.update(params.id, body, meta),
    }),
    route({
      method: 'delete',
      path: '/admin/users/{id}',
      operationId: 'deleteUser',
      summary: 'Delete a user and revoke every grant',
      tags,
      auth: 'admin',
      params: userId,
      response: { status: 204, description: 'Deleted' },
      errors: [404],
      handle: ({ params, meta }) => accounts.delete(params.id, meta),
    }),
    route({
      method: 'post',
      path: '/admin/users/{id}/approve',
      operationId: 'approveUser',
      summary: 'Approve a pending user (records who and when)',
      tags,
      auth: 'admin',
      params: userId,
      response: { status: 200, description: 'Approved', schema: userSchema },
      errors: [404, 409],
      handle: ({ params, meta }) => accounts.approve(params.id, meta),
    }),
    route({
      method: 'post',
      path: '/admin/users/{id}/revoke-sessions',
      operationId: 'revokeUserSessions',
      summary: "Revoke all of the user's grants (refresh tokens)",
      tags,
      auth: 'admin',
      params: userId,
      response: { status: 200, description: 'Revoked', schema: z.object({ revoked: z.number().int() }) },
      errors: [404],
      handle: async ({ params, meta }) => ({ revoked: await accounts.revokeSessions(params.id, meta) }),
    }),
    route({
      method: 'post',
      path: '/admin/users/{id}/reset-password',
      operationId: 'forcePasswordReset',
      summary: 'Force a reset: the password stops working, grants are revoked, a reset link is emailed',
      tags,
      auth: 'admin',
      params: userId,
      response: {
        status: 200,
        description: 'Reset started',
        schema: z.object({
          email_sent: z.boolean(),
          reset_url: z.string().optional().meta({ description: 'only when SMTP is not configured: hand it to the user' }),
        }),
      },
      errors: [404],
      handle: ({ params, meta }) => resets.force(params.id, meta),
    }),
  ];
}
