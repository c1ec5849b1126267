// Bearer access-token check for the admin API and the self-service password
// change: exactly the verifier downstream services use (src/verify: JWKS from
// this issuer, RFC 9068 `at+jwt`, RFC 6750 errors), plus an optional role.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Caller } from '../http/route.ts';
import { requireAuth, requireRole } from '../verify/index.js';

export type BearerOptions = { issuer: string; audience: string; algorithm: string; role?: string };

export function requireBearer(opts: BearerOptions): RequestHandler {
  const steps = [
    requireAuth({ issuer: opts.issuer, audience: opts.audience, algorithms: [opts.algorithm] }),
    ...(opts.role ? [requireRole(opts.role)] : []),
  ];
  return (req: Request, res: Response, next: NextFunction) => {
    const run = (i: number): void => {
      if (i === steps.length) {
        const auth = (req as Request & { auth: { subject: string; roles: string[]; clientId: string } }).auth;
        res.locals.caller = { sub: auth.subject, roles: auth.roles, clientId: auth.clientId } satisfies Caller;
        return next();
      }
      void steps[i]!(req, res, (err?: unknown) => (err ? next(err) : run(i + 1)));
    };
    run(0);
  };
}
