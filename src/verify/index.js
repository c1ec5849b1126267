// Access-token guards for downstream Express (or plain node:http) services:
// `import { requireAuth, requireScope, requireRole } from 'identity-service/verify'`.
//
// Plain ESM JavaScript with a hand-written index.d.ts, not TypeScript: Node
// refuses to strip types from .ts files inside node_modules, and this file is
// what a consumer loads from there.
//
// Tokens are verified offline against the issuer's JWKS (jose's
// createRemoteJWKSet: cached, refetched on an unknown kid after a cooldown),
// or against a key set the caller holds (`keys`), as RFC 9068 JWT access
// tokens. Key material is taken only from that JWKS: jku, x5u, jwk and x5c
// headers in a token are never followed. An optional `isRevoked` hook asks
// the caller's source of revocation truth about each token that verified.
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify } from 'jose';

const DEFAULT_ALGORITHMS = ['ES256', 'EdDSA', 'PS256'];
// RFC 9068 §2.2: claims every access token carries (iss and aud are checked against the options).
const REQUIRED_CLAIMS = ['exp', 'iat', 'sub', 'client_id', 'jti'];
// RFC 6750 §2.1 b64token.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
// The issuer (or its JWKS) could not be reached or answered nonsense: not the token's fault.
const UNAVAILABLE = new Set(['ERR_JWKS_TIMEOUT', 'ERR_JWKS_INVALID', 'ERR_JOSE_GENERIC']);
const DESCRIPTIONS = {
  ERR_JWT_EXPIRED: 'the access token expired',
  ERR_JWKS_NO_MATCHING_KEY: 'the access token was not signed by a key of the issuer',
  ERR_JWS_SIGNATURE_VERIFICATION_FAILED: 'the access token signature is invalid',
  ERR_JOSE_ALG_NOT_ALLOWED: 'the access token algorithm is not allowed',
};

/**
 * @param {import('./index.d.ts').RequireAuthOptions} options
 * @returns {import('./index.d.ts').Middleware}
 */
export function requireAuth(options) {
  const { issuer, audience, realm } = options ?? {};
  if (typeof issuer !== 'string' || !issuer) throw new TypeError('requireAuth: `issuer` is required');
  if (!audience || (Array.isArray(audience) && audience.length === 0)) throw new TypeError('requireAuth: `audience` is required');
  const algorithms = options.algorithms ?? DEFAULT_ALGORITHMS;
  if (algorithms.length === 0 || algorithms.some((a) => a === 'none' || a.startsWith('HS'))) {
    throw new TypeError('requireAuth: `algorithms` must list asymmetric JWS algorithms only');
  }
  const verifyOptions = {
    issuer,
    audience,
    algorithms,
    typ: 'at+jwt',
    requiredClaims: REQUIRED_CLAIMS,
    clockTolerance: options.clockTolerance ?? 5,
  };
  const jwksOptions = {
    cooldownDuration: options.cooldownDuration ?? 30_000,
    cacheMaxAge: options.cacheMaxAge ?? 600_000,
    timeoutDuration: options.timeoutDuration ?? 5_000,
  };

  const { keys, isRevoked } = options;
  if (keys !== undefined && typeof keys !== 'function' && !Array.isArray(keys?.keys)) {
    throw new TypeError('requireAuth: `keys` must be a JWKS ({ keys: [...] }) or a key function');
  }
  if (isRevoked !== undefined && typeof isRevoked !== 'function') throw new TypeError('requireAuth: `isRevoked` must be a function');
  const localKeys = keys === undefined ? undefined : typeof keys === 'function' ? keys : createLocalJWKSet(keys);

  /** @type {Promise<import('jose').JWTVerifyGetKey> | undefined} */
  let keySet = localKeys && Promise.resolve(localKeys);
  const getKeySet = () => {
    keySet ??= (options.jwksUri ? Promise.resolve(new URL(options.jwksUri)) : discoverJwksUri(issuer, jwksOptions.timeoutDuration))
      .then((url) => createRemoteJWKSet(url, jwksOptions))
      .catch((err) => {
        keySet = undefined; // retry discovery on the next request
        throw err;
      });
    return keySet;
  };

  return async function requireAuthMiddleware(req, res, next) {
    const header = req.headers.authorization;
    if (!header || !/^Bearer(\s|$)/i.test(header)) {
      return challenge(res, 401, realm, undefined, 'a Bearer access token is required');
    }
    const match = BEARER.exec(header);
    if (!match) return challenge(res, 400, realm, 'invalid_request', 'malformed Authorization header');
    let result;
    try {
      result = await jwtVerify(match[1], await getKeySet(), verifyOptions);
    } catch (err) {
      const code = err instanceof errors.JOSEError ? err.code : undefined;
      if (code === undefined || UNAVAILABLE.has(code)) {
        res.setHeader('Retry-After', '5');
        return challenge(res, 503, realm, 'temporarily_unavailable', 'the token issuer cannot be reached');
      }
      return challenge(res, 401, realm, 'invalid_token', DESCRIPTIONS[code] ?? 'the access token is invalid');
    }
    const { payload: claims, protectedHeader: tokenHeader } = result;
    const auth = {
      token: match[1],
      claims,
      header: tokenHeader,
      subject: /** @type {string} */ (claims.sub),
      clientId: /** @type {string} */ (claims.client_id),
      scopes: typeof claims.scope === 'string' ? claims.scope.split(' ').filter(Boolean) : [],
      roles: Array.isArray(claims.roles) ? claims.roles.filter((r) => typeof r === 'string') : [],
    };
    if (isRevoked) {
      let revoked;
      try {
        revoked = await isRevoked(auth, req);
      } catch {
        // The source of truth cannot answer: fail closed, and say it is not the token's fault.
        res.setHeader('Retry-After', '1');
        return challenge(res, 503, realm, 'temporarily_unavailable', 'the revocation check is unavailable');
      }
      if (revoked) return challenge(res, 401, realm, 'invalid_token', 'the access token has been revoked');
    }
    req.auth = auth;
    next();
  };
}

/**
 * 403 insufficient_scope unless the token carries every listed scope.
 * @param {...string} scopes
 * @returns {import('./index.d.ts').Middleware}
 */
export function requireScope(...scopes) {
  return guard((auth) => scopes.every((s) => auth.scopes.includes(s)), scopes.join(' '));
}

/**
 * 403 insufficient_scope unless the token carries at least one listed role.
 * @param {...string} roles
 * @returns {import('./index.d.ts').Middleware}
 */
export function requireRole(...roles) {
  return guard((auth) => roles.some((r) => auth.roles.includes(r)), undefined);
}

/** @returns {import('./index.d.ts').Middleware} */
function guard(allowed, scope) {
  return function guardMiddleware(req, res, next) {
    // Mounted without requireAuth in front of it: refuse rather than guess.
    if (!req.auth) return challenge(res, 401, undefined, undefined, 'a Bearer access token is required');
    if (!allowed(req.auth)) {
      return challenge(res, 403, undefined, 'insufficient_scope', 'the access token does not grant this', scope);
    }
    next();
  };
}

async function discoverJwksUri(issuer, timeout) {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/oauth-authorization-server`;
  const res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(timeout), headers: { accept: 'application/json' } });
  if (res.status !== 200) throw new Error(`discovery answered ${res.status}`);
  const meta = await res.json();
  if (meta?.issuer !== issuer) throw new Error('discovery names another issuer');
  if (typeof meta.jwks_uri !== 'string') throw new Error('discovery has no jwks_uri');
  return new URL(meta.jwks_uri);
}

const quote = (v) => `"${String(v).replace(/["\\]/g, '')}"`;

// RFC 6750 §3: the challenge in WWW-Authenticate, the same error as JSON in the body.
function challenge(res, status, realm, error, description, scope) {
  const params = [realm && `realm=${quote(realm)}`, error && `error=${quote(error)}`, error && `error_description=${quote(description)}`, scope && `scope=${quote(scope)}`]
    .filter(Boolean)
    .join(', ');
  const body = JSON.stringify({ error: error ?? 'unauthorized', error_description: description });
  res.statusCode = status;
  res.setHeader('WWW-Authenticate', params ? `Bearer ${params}` : 'Bearer');
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}
