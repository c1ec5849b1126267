// The JSON APIs: the admin API (admin port, under /admin) and the
// self-service routes (public port), built from their route declarations.
import { Router } from 'express';
import type { Accounts } from '../accounts/lifecycle.ts';
import type { PasswordResets } from '../accounts/reset.ts';
import type { Clients } from '../clients/index.ts';
import type { Config } from '../config/index.ts';
import type { JWTVerifyGetKey } from 'jose';
import { routerFor } from '../http/route.ts';
import type { AuditLog } from '../security/audit.ts';
import type { SessionTruth } from '../tokens/sessions.ts';
import { auditRoutes } from './audit.ts';
import { requireBearer } from './auth.ts';
import { clientRoutes } from './clients.ts';
import { openApiDocument } from './openapi.ts';
import { selfServiceRoutes } from './self-service.ts';
import { userRoutes } from './users.ts';

export type ApiDeps = {
  config: Pick<Config, 'issuer' | 'audience' | 'adminAudience'>;
  accounts: Accounts;
  resets: PasswordResets;
  clients: Clients;
  audit: AuditLog;
  /** This replica's published signing keys (src/tokens/key-rotation.ts). */
  keys: JWTVerifyGetKey;
  keyPublished(kid: string): Promise<boolean>;
  sessions: SessionTruth;
};

export function apiRoutes(deps: Pick<ApiDeps, 'accounts' | 'resets' | 'clients' | 'audit'>) {
  return {
    admin: [...userRoutes(deps.accounts, deps.resets), ...clientRoutes(deps.clients), ...auditRoutes(deps.audit)],
    selfService: selfServiceRoutes(deps.accounts, deps.resets),
  };
}

/** Both routers; `admin` also serves GET /admin/openapi.json (no token needed). */
export function apiRouters(deps: ApiDeps): { admin: Router; selfService: Router } {
  const routes = apiRoutes(deps);
  const bearer = { issuer: deps.config.issuer, keys: deps.keys, keyPublished: deps.keyPublished, sessions: deps.sessions };
  // Admin tokens are only those issued for the admin API's own audience.
  const guards = {
    admin: requireBearer({ ...bearer, audience: deps.config.adminAudience, restrictedAudience: true, role: 'admin' }),
    user: requireBearer({ ...bearer, audience: deps.config.audience }),
  };
  const document = openApiDocument([...routes.admin, ...routes.selfService]);
  const admin = Router();
  admin.get('/admin/openapi.json', (_req, res) => {
    res.json(document);
  });
  admin.use(routerFor(routes.admin, guards));
  return { admin, selfService: routerFor(routes.selfService, guards) };
}
