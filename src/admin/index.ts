// The admin API, mounted on the admin port under /admin: JSON bodies (size
// limited), every route behind an admin Bearer token except the OpenAPI
// document, a request id on every response.
import { randomUUID } from 'node:crypto';
import express, { Router, type RequestHandler } from 'express';
import type { AuditLog } from '../accounts/audit.ts';
import type { Accounts } from '../accounts/lifecycle.ts';
import type { PasswordResets } from '../accounts/reset.ts';
import { auditRouter } from './audit.ts';
import { clientsRouter } from './clients.ts';
import { openApiDocument } from './openapi.ts';
import { usersRouter } from './users.ts';

export type AdminDeps = {
  accounts: Accounts;
  resets: PasswordResets;
  audit: AuditLog;
  knownScopes: readonly string[];
  /** Admin-role Bearer check (src/admin/auth.ts). */
  requireAdmin: RequestHandler;
};

export function adminRouter(deps: AdminDeps): Router {
  const r = Router();
  r.use((req, res, next) => {
    const given = req.get('x-request-id');
    res.set('X-Request-Id', given && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : randomUUID());
    if (!given) req.headers['x-request-id'] = res.get('X-Request-Id');
    next();
  });
  r.get('/openapi.json', (_req, res) => {
    res.json(openApiDocument());
  });
  r.use(deps.requireAdmin);
  r.use(express.json({ limit: '64kb' }));
  r.use(usersRouter(deps.accounts, deps.resets));
  r.use(clientsRouter(deps.accounts.deps.db, deps.audit, deps.knownScopes));
  r.use(auditRouter(deps.audit));
  return r;
}
