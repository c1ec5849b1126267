// Bearer access-token checks for the admin API and the self-service password
// change. The signature is verified with the shared verifier (packages/verify:
// RFC 9068 `at+jwt`, RFC 6750 errors) against this replica's own published
// keys, in process: no HTTP round trip to the public URL, no key cache, so a
// key revoked here stops working at once. Then, on every request, Postgres
// decides (the token's claims never do on their own): the user exists, is
// active and still carries the token's session generation, the client still
// exists with the same epoch (src/tokens/sessions.ts), the signing key is
// still published (a revocation by another process, e.g. the CLI), and the
// roles are the user's roles now, not the token's.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { JWTVerifyGetKey } from 'jose';
import { ServiceError } from '../errors.ts';
import type { Caller } from '../http/route.ts';
import type { SessionTruth } from '../tokens/sessions.ts';
import { requireAuth, type AuthInfo } from '@identity-service/verify';

export type BearerOptions = {
  issuer: string;
  /** ADMIN_AUDIENCE for the admin API, TOKEN_AUDIENCE for self-service. */
  audience: string;
  keys: JWTVerifyGetKey;
  sessions: Pick<SessionTruth, 'check'>;
  /** Is this kid still published? (Postgres: revocations by other processes.) */
  keyPublished(kid: string): Promise<boolean>;
  role?: string;
  /** The audience is one the client must still be allowed (ADMIN_AUDIENCE), not the default one. */
  restrictedAudience?: boolean;
};

export function requireBearer(opts: BearerOptions): RequestHandler {
  const verify = requireAuth({ issuer: opts.issuer, audience: opts.audience, keys: opts.keys });
  const revoked = () => new ServiceError('invalid_token', 'the access token has been revoked');
  const current = async (req: Request, res: Response) => {
    const auth = (req as Request & { auth: AuthInfo }).auth;
    const [session, published] = await Promise.all([opts.sessions.check(auth.claims), opts.keyPublished(String(auth.header.kid ?? ''))]);
    if (!session || !published) throw revoked();
    // An admin console whose permission was withdrawn: its admin tokens end with it.
    if (opts.restrictedAudience && !session.clientResources.includes(opts.audience)) throw revoked();
    if (opts.role && !session.roles.includes(opts.role)) {
      throw new ServiceError('insufficient_scope', `the ${opts.role} role is required`);
    }
    res.locals.caller = { sub: session.accountId, roles: session.roles, clientId: session.clientId } satisfies Caller;
  };
  return (req: Request, res: Response, next: NextFunction) => {
    void verify(req, res, (err?: unknown) => {
      if (err) return next(err);
      current(req, res).then(() => next(), next);
    });
  };
}
