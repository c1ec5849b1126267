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
  /** RFC 9449: the thumbprint of the key a DPoP-bound token is bound to. */
  cnf?: { jkt?: string };
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
  isRevoked?: (auth: AuthInfo, req: IncomingMessage & RequestLike) => boolean | Promise<boolean>;
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
  /** Where a failed discovery is reported (once per failure); default console. */
  logger?: { warn(message: string): void };
  /**
   * The URL the client called, for a DPoP proof's `htu` (query and fragment
   * ignored). Default: http(s)://Host + the request path. Behind a proxy that
   * terminates TLS or rewrites paths, give the public URL.
   */
  publicUrl?: (req: IncomingMessage | RequestLike) => string;
  /** Seconds a DPoP proof's `iat` may be away from now (plus clockTolerance); default 60. */
  dpopProofMaxAge?: number;
  /** Algorithms accepted for DPoP proofs; default ES256, EdDSA, PS256. */
  dpopAlgorithms?: string[];
  /** DPoP proof `jti`s remembered (per process) to refuse replays; default 100000. */
  dpopReplayCacheSize?: number;
  /** Milliseconds a failed discovery is remembered (requests answer 503 without refetching); default 5000. */
  discoveryRetryMs?: number;
};

/**
 * Verifies `Authorization: Bearer <JWT>` (RFC 9068 access token), or
 * `Authorization: DPoP <JWT>` with a `DPoP` proof header (RFC 9449), and sets
 * `req.auth`. A DPoP-bound token (`cnf.jkt`) is refused as Bearer. Answers 401 (`invalid_token`, or a bare challenge when no token
 * was sent), 400 `invalid_request` for a malformed header, 503 when the
 * issuer's keys cannot be fetched; never calls next(err).
 */
export function requireAuth(options: RequireAuthOptions): Middleware;

/** The discovery URLs tried for an issuer: RFC 8414 §3.1 first, then OpenID Connect Discovery. */
export function discoveryUrls(issuer: string): string[];

/** What verifyRequest() reads: a node:http / Express request, a Fetch API Request, or anything with headers. */
export type RequestLike = { headers: { authorization?: string | undefined } | { get(name: string): string | null } };

/** The error to answer (RFC 6750): status, `error`, `error_description` and the headers (WWW-Authenticate, Retry-After). */
export type VerifyFailure = { ok: false; status: 400 | 401 | 403 | 503; error: string; description: string; headers: Record<string, string> };

export type VerifyResult = { ok: true; auth: AuthInfo } | VerifyFailure;

export type VerifyRequest = (req: RequestLike) => Promise<VerifyResult>;

/**
 * The same verification as requireAuth, without a framework:
 * `const { verifyRequest } = createVerifier(options); const r = await verifyRequest(req);`
 * then `r.auth` when `r.ok`, else answer `r.status` with `r.headers` (or sendError(res, r)).
 */
export function createVerifier(options: RequireAuthOptions): { verifyRequest: VerifyRequest };

/** Writes a failed result to a node:http (or Express) response: status, headers, JSON body `{error, error_description}`. */
export function sendError(res: ServerResponse, failed: VerifyFailure): void;

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
