// Self-service account endpoints, mounted on the PUBLIC port (not the admin
// port): registration, password reset by email, password change. JSON only.
import express, { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import type { ZodOpenApiPathsObject } from 'zod-openapi';
import type { Accounts } from '../accounts/lifecycle.ts';
import type { PasswordResets } from '../accounts/reset.ts';
import type { Caller } from './auth.ts';
import { auditMeta, errorResponses, json, parse } from './validate.ts';
import { userSchema } from './users.ts';

// No role, no status: whatever else is sent is refused (strict).
const registerBody = z.strictObject({ email: z.email().max(320), password: z.string() }).meta({ id: 'Registration' });
const forgotBody = z.strictObject({ email: z.string().max(320) });
const resetBody = z.strictObject({ token: z.string().min(1).max(200), password: z.string() });
const changeBody = z.strictObject({ current_password: z.string().min(1), new_password: z.string() });
const accepted = z.object({ status: z.literal('accepted') });

const tags = ['self-service'];
const publicServer = [{ url: '/', description: 'the public port (PORT), not the admin port' }];
export const selfServicePaths: ZodOpenApiPathsObject = {
  '/register': {
    servers: publicServer,
    post: {
      operationId: 'register',
      summary: 'Self-registration (REGISTRATION_MODE open or approval)',
      tags,
      security: [],
      requestBody: { content: { 'application/json': { schema: registerBody } } },
      responses: {
        '201': json(userSchema, 'Registered: active (open) or pending approval (approval)'),
        ...errorResponses(400, 403, 409),
      },
    },
  },
  '/password/forgot': {
    servers: publicServer,
    post: {
      operationId: 'requestPasswordReset',
      summary: 'Email a reset link; the same answer whether or not the account exists',
      tags,
      security: [],
      requestBody: { content: { 'application/json': { schema: forgotBody } } },
      responses: { '202': json(accepted, 'Accepted'), ...errorResponses(400) },
    },
  },
  '/password/reset': {
    servers: publicServer,
    post: {
      operationId: 'completePasswordReset',
      summary: 'Set a new password with the emailed token (single use); revokes every grant',
      tags,
      security: [],
      requestBody: { content: { 'application/json': { schema: resetBody } } },
      responses: { '204': { description: 'Password set' }, ...errorResponses(400) },
    },
  },
  '/account/password': {
    servers: publicServer,
    post: {
      operationId: 'changePassword',
      summary: "Change one's own password (Bearer access token + current password); revokes refresh tokens",
      tags,
      requestBody: { content: { 'application/json': { schema: changeBody } } },
      responses: { '204': { description: 'Password changed' }, ...errorResponses(400, 401, 403) },
    },
  },
};

export function selfServiceRouter(accounts: Accounts, resets: PasswordResets, bearer: RequestHandler): Router {
  const r = Router();
  r.use(['/register', '/password', '/account'], express.json({ limit: '16kb' }));
  r.post('/register', async (req, res) => {
    res.status(201).json(await accounts.register(parse(registerBody, req.body), auditMeta(req, res)));
  });
  r.post('/password/forgot', async (req, res) => {
    await resets.request(parse(forgotBody, req.body).email, auditMeta(req, res));
    res.status(202).json({ status: 'accepted' });
  });
  r.post('/password/reset', async (req, res) => {
    const body = parse(resetBody, req.body);
    await resets.complete(body.token, body.password, auditMeta(req, res));
    res.status(204).end();
  });
  r.post('/account/password', bearer, async (req, res) => {
    const body = parse(changeBody, req.body);
    const caller = res.locals.caller as Caller;
    await accounts.changePassword(caller.sub, body.current_password, body.new_password, auditMeta(req, res));
    res.status(204).end();
  });
  return r;
}
