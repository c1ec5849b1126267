// The JSON APIs: the admin API (admin port, under /admin) and the
// self-service routes (public port), built from their route declarations.
import { Router } from 'express';
import type { JWTVerifyGetKey } from 'jose';
import type { Accounts } from '../accounts/lifecycle.ts';
import type { Registration } from '../accounts/registration.ts';
import type { PasswordResets } from '../accounts/reset.ts';
import type { Clients } from '../clients/index.ts';
import type { Config } from '../config/index.ts';
import { routerFor } from '../http/route.ts';
import type { AuditLog } from '../security/audit.ts';
import type { SessionTruth } from '../tokens/sessions.ts';
import { auditRoutes } from './audit.ts';
import { requireBearer } from './auth.ts';
import { clientRoutes } from './clients.ts';
import { openApiDocument } from './openapi.ts';
import { resetPageRouter } from './reset-page.ts';
import { selfServiceRoutes } from './self-service.ts';
import { userRoutes } from './users.ts';

export type ApiDeps = {
  config: Pick<Config, 'issuer' | 'audience' | 'adminAudience' | 'passwordPolicy' | 'mail'>;
  accounts: Accounts;
  registration: Registration;
  resets: PasswordResets;
  clients: Clients;
  audit: AuditLog;
  /** This replica's published signing keys (src/tokens/key-rotation.ts). */
  keys: JWTVerifyGetKey;
  keyPublished(kid: string): Promise<boolean>;
  sessions: SessionTruth;
};

export function apiRoutes(deps: Pick<ApiDeps, 'accounts' | 'registration' | 'resets' | 'clients' | 'audit'>) {
  return {
    admin: [...userRoutes(deps.accounts, deps.resets), ...clientRoutes(deps.clients), ...auditRoutes(deps.audit)],
    selfService: selfServiceRoutes(deps.accounts, deps.registration, deps.resets),
  };
}

/** Both routers; `admin` also serves GET /admin/openapi.json (no token needed), `selfService` the reset page. */
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
  const selfService = Router();
  selfService.use(resetPageRouter(deps.config), routerFor(routes.selfService, guards));
  return { admin, selfService };
}
