// The JSON APIs: the admin API (admin port, under /admin) and the
// self-service routes (public port), built from their route declarations.
import { Router, type RequestHandler } from 'express';
import type { JWTVerifyGetKey } from 'jose';
import type { Accounts } from '../accounts/lifecycle.ts';
import type { SecondFactor } from '../accounts/mfa.ts';
import type { Registration } from '../accounts/registration.ts';
import type { PasswordResets } from '../accounts/reset.ts';
import type { Clients } from '../clients/index.ts';
import type { Config } from '../config/index.ts';
import { routerFor } from '../http/route.ts';
import type { AuditLog } from '../security/audit.ts';
import { ServiceError } from '../errors.ts';
import type { MfaTickets } from '../tokens/mfa-tickets.ts';
import type { SessionTruth } from '../tokens/sessions.ts';
import { auditRoutes } from './audit.ts';
import { requireBearer } from './auth.ts';
import { clientRoutes } from './clients.ts';
import { forwardAuthHandler } from './forward-auth.ts';
import { mfaAdminRoutes, mfaSelfServiceRoutes } from './mfa.ts';
import { openApiDocument } from './openapi.ts';
import { resetPageRouter } from './reset-page.ts';
import { selfServiceRoutes } from './self-service.ts';
import { userRoutes } from './users.ts';

export type ApiDeps = {
  config: Pick<Config, 'issuer' | 'audience' | 'adminAudience' | 'passwordPolicy' | 'mail' | 'forwardAuthCacheSeconds'>;
  accounts: Accounts;
  registration: Registration;
  resets: PasswordResets;
  clients: Clients;
  audit: AuditLog;
  /** This replica's published signing keys (src/tokens/key-rotation.ts). */
  keys: JWTVerifyGetKey;
  keyPublished(kid: string): Promise<boolean>;
  sessions: SessionTruth;
  secondFactor: SecondFactor;
  tickets: MfaTickets;
};

export function apiRoutes(deps: Pick<ApiDeps, 'accounts' | 'registration' | 'resets' | 'clients' | 'audit' | 'secondFactor'>) {
  return {
    admin: [
      ...userRoutes(deps.accounts, deps.resets),
      ...mfaAdminRoutes(deps.secondFactor),
      ...clientRoutes(deps.clients),
      ...auditRoutes(deps.audit),
    ],
    selfService: [...selfServiceRoutes(deps.accounts, deps.registration, deps.resets), ...mfaSelfServiceRoutes(deps.secondFactor)],
  };
}

/** Both routers and GET /verify; `admin` also serves GET /admin/openapi.json (no token needed), `selfService` the reset page. */
export function apiRouters(deps: ApiDeps): { admin: Router; selfService: Router; forwardAuth: ReturnType<typeof forwardAuthHandler> } {
  const routes = apiRoutes(deps);
  const bearer = { issuer: deps.config.issuer, keys: deps.keys, keyPublished: deps.keyPublished, sessions: deps.sessions };
  // Admin tokens are only those issued for the admin API's own audience.
  const user = requireBearer({ ...bearer, audience: deps.config.audience });
  const guards = {
    admin: requireBearer({ ...bearer, audience: deps.config.adminAudience, restrictedAudience: true, role: 'admin' }),
    user,
    enroll: enrollGuard(deps.tickets, deps.sessions, user),
  };
  const document = openApiDocument([...routes.admin, ...routes.selfService]);
  const admin = Router();
  admin.get('/admin/openapi.json', (_req, res) => {
    res.json(document);
  });
  admin.use(routerFor(routes.admin, guards));
  const selfService = Router();
  const forwardAuth = forwardAuthHandler({
    issuer: deps.config.issuer,
    audience: deps.config.audience,
    keys: deps.keys,
    sessions: deps.sessions,
    cacheSeconds: deps.config.forwardAuthCacheSeconds,
  });
  selfService.use(resetPageRouter(deps.config), routerFor(routes.selfService, guards));
  return { admin, selfService, forwardAuth };
}

/**
 * An access token (the `user` guard), or the mfa_token of a login that must
 * enroll a second factor first: opaque, 43 characters, never a JWT. Like the
 * OTP grant that later redeems it, the mfa_token dies with a password change,
 * reset, revocation or disable since its password step (the session
 * generation in Postgres): otherwise whoever knew the old password could
 * still register their own authenticator on the account.
 */
function enrollGuard(tickets: MfaTickets, sessions: Pick<SessionTruth, 'accountHolds'>, user: RequestHandler): RequestHandler {
  const refused = () => new ServiceError('invalid_token', 'the mfa_token is invalid, expired or not for enrollment');
  return (req, res, next) => {
    const token = /^Bearer ([\w-]{43})$/.exec(req.get('authorization') ?? '')?.[1];
    if (!token) return user(req, res, next);
    (async () => {
      const ticket = await tickets.find(token, 'mfa_token');
      if (!ticket || ticket.purpose !== 'enroll') throw refused();
      if (!(await sessions.accountHolds(ticket.accountId, ticket.generation))) throw refused();
      res.locals.caller = { sub: ticket.accountId, roles: [], clientId: ticket.clientId };
    })().then(() => next(), next);
  };
}
