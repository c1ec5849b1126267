// Bearer access-token check for the admin API and the self-service password
// change: the same offline verification any downstream service does (JWKS
// from this issuer, RFC 9068 `at+jwt`). Errors per RFC 6750 §3.
// Kept deliberately tiny: the shared verifier middleware will replace it.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';

export type BearerOptions = { issuer: string; audience: string; algorithm: string; role?: string };

export type Caller = { sub: string; roles: string[]; clientId: string | undefined };

export function requireBearer(opts: BearerOptions): RequestHandler {
  const jwks = createRemoteJWKSet(new URL(`${opts.issuer}/jwks`));
  const deny = (res: Response, status: 401 | 403, error: string, description: string) => {
    res.set('WWW-Authenticate', `Bearer realm="identity", error="${error}", error_description="${description}"`);
    res.status(status).json({ error, message: description });
  };
  return async (req: Request, res: Response, next: NextFunction) => {
    const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(req.get('authorization') ?? '');
    if (!match) {
      res.set('WWW-Authenticate', 'Bearer realm="identity"');
      res.status(401).json({ error: 'unauthorized', message: 'a Bearer access token is required' });
      return;
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(match[1]!, jwks, {
        issuer: opts.issuer,
        audience: opts.audience,
        typ: 'at+jwt',
        algorithms: [opts.algorithm],
      }));
    } catch {
      deny(res, 401, 'invalid_token', 'the access token is invalid or expired');
      return;
    }
    const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string') : [];
    if (!payload.sub || (opts.role && !roles.includes(opts.role))) {
      deny(res, 403, 'insufficient_scope', opts.role ? `the ${opts.role} role is required` : 'a user access token is required');
      return;
    }
    const clientId = typeof payload.client_id === 'string' ? payload.client_id : undefined;
    res.locals.caller = { sub: payload.sub, roles, clientId } satisfies Caller;
    next();
  };
}
