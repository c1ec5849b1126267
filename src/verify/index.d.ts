// Types of identity-service/verify (index.js). Structural node:http types so
// that Express 4, Express 5 and plain node:http handlers all accept them.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JSONWebKeySet, JWTPayload, JWTVerifyGetKey, ProtectedHeaderParameters } from 'jose';

export type AccessTokenClaims = JWTPayload & {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  scope?: string;
  roles?: string[];
  /** The login (grant) the token belongs to: revoking it ends the login. */
  grant_id?: string;
};

/** What requireAuth puts on `req.auth`. */
export type AuthInfo = {
  /** The raw access token (forward it, never log it). */
  token: string;
  claims: AccessTokenClaims;
  header: ProtectedHeaderParameters;
  /** `sub`: the user id, or the client id for client_credentials tokens. */
  subject: string;
  clientId: string;
  scopes: string[];
  roles: string[];
};

export type AuthenticatedRequest = IncomingMessage & { auth?: AuthInfo };

export type Middleware = (req: AuthenticatedRequest, res: ServerResponse, next: (err?: unknown) => void) => void | Promise<void>;

export type RequireAuthOptions = {
  /** The identity service's issuer URL, exactly as in its tokens' `iss`. */
  issuer: string;
  /** This service's audience (the identity service's TOKEN_AUDIENCE). */
  audience: string | string[];
  /** JWKS URL; default: `jwks_uri` from the issuer's discovery document. Ignored with `keys`. */
  jwksUri?: string;
  /**
   * Verify against these keys instead of fetching the JWKS: a JWKS object, or
   * a key function such as jose's createLocalJWKSet() that the caller keeps
   * current (the identity service's admin API passes its own published keys).
   */
  keys?: JSONWebKeySet | JWTVerifyGetKey;
  /**
   * Asked after a token verified: resolve true to refuse it as revoked (401
   * `invalid_token`); a throw or rejection answers 503. Back it with the
   * issuer's truth, e.g. introspection or a list of revoked `grant_id`s.
   */
  isRevoked?: (auth: AuthInfo, req: IncomingMessage) => boolean | Promise<boolean>;
  /** Accepted JWS algorithms (asymmetric only); default ES256, EdDSA, PS256. */
  algorithms?: string[];
  /** Seconds of clock skew tolerated on exp/nbf/iat; default 5. */
  clockTolerance?: number;
  /** Milliseconds between JWKS refetches on an unknown kid; default 30000. */
  cooldownDuration?: number;
  /** Milliseconds a fetched JWKS is used before refetching; default 600000. */
  cacheMaxAge?: number;
  /** Milliseconds to wait for the JWKS or discovery; default 5000. */
  timeoutDuration?: number;
  /** `realm` of the WWW-Authenticate challenge. */
  realm?: string;
};

/**
 * Verifies `Authorization: Bearer <JWT>` (RFC 9068 access token) and sets
 * `req.auth`. Answers 401 (`invalid_token`, or a bare challenge when no token
 * was sent), 400 `invalid_request` for a malformed header, 503 when the
 * issuer's keys cannot be fetched; never calls next(err).
 */
export function requireAuth(options: RequireAuthOptions): Middleware;

/** 403 `insufficient_scope` unless the token carries every listed scope. */
export function requireScope(...scopes: string[]): Middleware;

/** 403 `insufficient_scope` unless the token carries at least one listed role. */
export function requireRole(...roles: string[]): Middleware;

declare global {
  namespace Express {
    interface Request {
      auth?: AuthInfo;
    }
  }
}
