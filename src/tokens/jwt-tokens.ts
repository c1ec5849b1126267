// JWT access tokens at introspection (RFC 7662) and revocation (RFC 7009).
//
// oidc-provider only knows the tokens it stores: it authenticates the client
// and then refuses a JWT with `unsupported_token_type`. This middleware runs
// around its two endpoints and, only in that case (the client authenticated,
// the token structured), answers for the JWT instead:
//   - introspection: active only while the signature (this replica's
//     published keys), `exp`, and the login hold: the session stamp against
//     Postgres (src/tokens/sessions.ts) and the grant still stored, the same
//     truth refresh uses; a client_credentials token, while its client row
//     still carries the epoch it was issued under. Only the client the token
//     was issued to, or one listed in INTROSPECTION_CLIENTS, learns more
//     than {active:false};
//   - revocation: revokes the login (the grant and its refresh token family);
//     another client's token is refused (RFC 7009 §2.1).
import { jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type Provider from 'oidc-provider';
import type { Logger } from '../observability/log.ts';
import { clientOf, paramOf, routeOf, type OidcContext } from './oidc.ts';
import type { SessionTruth } from './sessions.ts';

export type JwtTokenDeps = {
  issuer: string;
  /** This replica's published verification keys. */
  keys(): JWTVerifyGetKey;
  sessions: Pick<SessionTruth, 'check' | 'clientHolds'>;
  /** Clients that may introspect any client's tokens (resource servers, gateways). */
  introspectors: readonly string[];
  logger: Logger;
};

const ALGORITHMS = ['ES256', 'EdDSA', 'PS256'];

export function jwtTokens(provider: Provider, deps: JwtTokenDeps) {
  const verify = async (token: string): Promise<JWTPayload | undefined> => {
    try {
      const { payload } = await jwtVerify(token, deps.keys(), { issuer: deps.issuer, typ: 'at+jwt', algorithms: ALGORITHMS });
      return payload;
    } catch {
      return undefined;
    }
  };
  const grantStored = async (grantId: string) => !!(await provider.Grant.find(grantId));

  const loginHolds = async (claims: JWTPayload): Promise<boolean> => {
    if (typeof claims.grant_id === 'string') {
      const [session, stored] = await Promise.all([deps.sessions.check(claims), grantStored(claims.grant_id)]);
      return !!session && stored;
    }
    return claims.sub === claims.client_id && (await deps.sessions.clientHolds(claims));
  };

  const introspect = async (ctx: OidcContext, clientId: string, token: string) => {
    const claims = await verify(token);
    const allowed = claims && (claims.client_id === clientId || deps.introspectors.includes(clientId));
    if (!claims || !allowed || !(await loginHolds(claims))) return { active: false };
    const { iss, sub, aud, exp, iat, jti, scope, client_id, cnf } = claims;
    const jkt = (cnf as { jkt?: unknown } | undefined)?.jkt;
    return { active: true, iss, sub, aud, exp, iat, jti, scope, client_id, token_type: jkt ? 'DPoP' : 'Bearer', ...(cnf ? { cnf } : {}) };
  };

  const revoke = async (ctx: OidcContext, clientId: string, token: string) => {
    const claims = await verify(token);
    if (!claims) return; // RFC 7009 §2.2: an invalid token is not an error
    if (claims.client_id !== clientId) {
      ctx.status = 400;
      ctx.body = { error: 'unauthorized_client', error_description: 'the token was not issued to this client' };
      return;
    }
    if (typeof claims.grant_id === 'string') {
      await provider.Grant.adapter.revokeByGrantId(claims.grant_id);
      await provider.Grant.adapter.destroy(claims.grant_id);
    }
  };

  return async function structuredTokens(ctx: OidcContext, next: () => Promise<void>): Promise<void> {
    await next();
    const route = routeOf(ctx);
    const client = clientOf(ctx);
    const token = paramOf(ctx, 'token');
    const refused = ctx.status === 400 && (ctx.body as { error?: unknown } | undefined)?.error === 'unsupported_token_type';
    if (!refused || !client || !token || (route !== 'introspection' && route !== 'revocation')) return;
    try {
      ctx.status = 200;
      if (route === 'introspection') ctx.body = await introspect(ctx, client.clientId, token);
      else {
        ctx.body = '';
        await revoke(ctx, client.clientId, token);
      }
    } catch (err) {
      // Postgres or Redis could not answer: never "active", never "revoked".
      deps.logger.warn({ err: { message: (err as Error).message }, route }, 'JWT access token check unavailable');
      ctx.status = 503;
      ctx.set('Retry-After', '1');
      ctx.body = { error: 'temporarily_unavailable', error_description: 'the token store is unavailable, try again' };
    }
  };
}
