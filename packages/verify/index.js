// Access-token guards for downstream Express (or plain node:http) services:
// `import { requireAuth, requireScope, requireRole, createVerifier } from '@identity-service/verify'`.
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
import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, createLocalJWKSet, createRemoteJWKSet, EmbeddedJWK, errors, jwtVerify } from 'jose';

const DEFAULT_ALGORITHMS = ['ES256', 'EdDSA', 'PS256'];
// RFC 9068 §2.2: claims every access token carries (iss and aud are checked against the options).
const REQUIRED_CLAIMS = ['exp', 'iat', 'sub', 'client_id', 'jti'];
// RFC 6750 §2.1 b64token, after the Bearer or (RFC 9449 §7.1) DPoP scheme.
const TOKEN = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*) *$/i;
const SCHEME = /^(Bearer|DPoP)(\s|$)/i;
// The issuer (or its JWKS) could not be reached or answered nonsense: not the token's fault.
const UNAVAILABLE = new Set(['ERR_JWKS_TIMEOUT', 'ERR_JWKS_INVALID', 'ERR_JOSE_GENERIC']);
const DESCRIPTIONS = {
  ERR_JWT_EXPIRED: 'the access token expired',
  ERR_JWKS_NO_MATCHING_KEY: 'the access token was not signed by a key of the issuer',
  ERR_JWS_SIGNATURE_VERIFICATION_FAILED: 'the access token signature is invalid',
  ERR_JOSE_ALG_NOT_ALLOWED: 'the access token algorithm is not allowed',
};

/**
 * The Express / node:http middleware: sets `req.auth`, or answers the RFC 6750 error.
 * @param {import('./index.d.ts').RequireAuthOptions} options
 * @returns {import('./index.d.ts').Middleware}
 */
export function requireAuth(options) {
  const { verifyRequest } = createVerifier(options);
  return async function requireAuthMiddleware(req, res, next) {
    const result = await verifyRequest(req);
    if (!result.ok) return sendError(res, result);
    req.auth = result.auth;
    next();
  };
}

/**
 * Framework-agnostic: `verifyRequest(req)` reads the Authorization header of a
 * node:http request, an Express request, a Fetch API Request or anything with
 * `headers`, and resolves to `{ ok: true, auth }` or to the error to answer
 * (`{ ok: false, status, error, description, headers }`, see sendError).
 * @param {import('./index.d.ts').RequireAuthOptions} options
 * @returns {{ verifyRequest: import('./index.d.ts').VerifyRequest }}
 */
export function createVerifier(options) {
  const { issuer, audience, realm } = options ?? {};
  if (typeof issuer !== 'string' || !issuer) throw new TypeError('requireAuth: `issuer` is required');
  // Tokens carry the issuer exactly (RFC 9068 §4), and the identity service's never ends with "/".
  if (issuer.endsWith('/')) {
    throw new TypeError(`requireAuth: \`issuer\` must be exactly the tokens' \`iss\`, which never ends with "/": use ${JSON.stringify(issuer.replace(/\/+$/, ''))}`);
  }
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

  const dpop = dpopChecker(options);
  const { keys, isRevoked } = options;
  if (keys !== undefined && typeof keys !== 'function' && !Array.isArray(keys?.keys)) {
    throw new TypeError('requireAuth: `keys` must be a JWKS ({ keys: [...] }) or a key function');
  }
  if (isRevoked !== undefined && typeof isRevoked !== 'function') throw new TypeError('requireAuth: `isRevoked` must be a function');
  const localKeys = keys === undefined ? undefined : typeof keys === 'function' ? keys : createLocalJWKSet(keys);

  const logger = options.logger ?? console;
  const retryAfterMs = options.discoveryRetryMs ?? 5_000;
  /** @type {Promise<import('jose').JWTVerifyGetKey> | undefined} */
  let keySet = localKeys && Promise.resolve(localKeys);
  const getKeySet = () => {
    keySet ??= (options.jwksUri ? Promise.resolve(new URL(options.jwksUri)) : discoverJwksUri(issuer, jwksOptions.timeoutDuration))
      .then((url) => createRemoteJWKSet(url, jwksOptions))
      .catch((err) => {
        // Logged once, and remembered for a while: requests in that window
        // answer 503 at once instead of each fetching discovery again.
        logger.warn(`identity-service/verify: discovery of ${issuer} failed (${err?.message ?? err}); retrying in ${retryAfterMs} ms`);
        setTimeout(() => (keySet = undefined), retryAfterMs).unref();
        throw err;
      });
    return keySet;
  };

  const fail = (status, error, description, retryAfter) => failure(status, realm, error, description, undefined, retryAfter);

  async function verifyRequest(req) {
    const header = headerOf(req, 'authorization');
    if (!header || !SCHEME.test(header)) return fail(401, undefined, 'a Bearer access token is required');
    const match = TOKEN.exec(header);
    if (!match) return fail(400, 'invalid_request', 'malformed Authorization header');
    const [, scheme, token] = match;
    let result;
    try {
      result = await jwtVerify(token, await getKeySet(), verifyOptions);
    } catch (err) {
      const code = err instanceof errors.JOSEError ? err.code : undefined;
      if (code === undefined || UNAVAILABLE.has(code)) return fail(503, 'temporarily_unavailable', 'the token issuer cannot be reached', '5');
      return fail(401, 'invalid_token', DESCRIPTIONS[code] ?? 'the access token is invalid');
    }
    const { payload: claims, protectedHeader: tokenHeader } = result;
    // RFC 9449 §7: a DPoP-bound token only with the DPoP scheme and a valid proof.
    const refusal = await dpop(req, scheme.toLowerCase() === 'dpop', token, claims.cnf?.jkt);
    if (refusal) return failure(401, realm, refusal[0], refusal[1], undefined, undefined, dpop.scheme);
    const auth = {
      token,
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
        return fail(503, 'temporarily_unavailable', 'the revocation check is unavailable', '1');
      }
      if (revoked) return fail(401, 'invalid_token', 'the access token has been revoked');
    }
    return { ok: true, auth };
  }
  return { verifyRequest };
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
    if (!req.auth) return sendError(res, failure(401, undefined, undefined, 'a Bearer access token is required'));
    if (!allowed(req.auth)) {
      return sendError(res, failure(403, undefined, 'insufficient_scope', 'the access token does not grant this', scope));
    }
    next();
  };
}

/**
 * Where the issuer's metadata lives, in the order tried: RFC 8414 §3.1
 * inserts the well-known segment between the host and the issuer's path;
 * OpenID Connect Discovery §4 appends it to the issuer. Pure.
 * @param {string} issuer
 */
export function discoveryUrls(issuer) {
  const { origin, pathname } = new URL(issuer);
  const path = pathname === '/' ? '' : pathname;
  return [`${origin}/.well-known/oauth-authorization-server${path}`, `${origin}${path}/.well-known/openid-configuration`];
}

async function discoverJwksUri(issuer, timeout) {
  let status;
  for (const url of discoveryUrls(issuer)) {
    const res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(timeout), headers: { accept: 'application/json' } });
    status = res.status;
    if (status === 404) continue;
    if (status !== 200) break;
    const meta = await res.json();
    if (meta?.issuer !== issuer) throw new Error(`discovery at ${url} names another issuer`);
    if (typeof meta.jwks_uri !== 'string') throw new Error(`discovery at ${url} has no jwks_uri`);
    return new URL(meta.jwks_uri);
  }
  throw new Error(`discovery answered ${status}`);
}

// RFC 9449 §4.3, §7: the DPoP proof of a request that presents a DPoP-bound
// token. Checked: the proof's own signature (typ dpop+jwt, an asymmetric
// algorithm, a public key), htm, htu, ath, an iat within the window, its
// jti not seen before (a replay cache in this process), and the key's
// thumbprint equal to the token's cnf.jkt. Nonces (§8) are not used.
function dpopChecker(options) {
  const algorithms = options.dpopAlgorithms ?? DEFAULT_ALGORITHMS;
  const window = (options.dpopProofMaxAge ?? 60) + (options.clockTolerance ?? 5);
  const publicUrl =
    options.publicUrl ??
    ((req) => URL.parse(req.url)?.href ?? `${req.socket?.encrypted ? 'https' : 'http'}://${headerOf(req, 'host')}${req.originalUrl ?? req.url}`);
  const seen = new Map(); // `${jkt} ${jti}` → when the proof stops being acceptable (epoch seconds)
  const maxSeen = options.dpopReplayCacheSize ?? 100_000;
  const spend = (key, until, now) => {
    if (seen.has(key)) return false;
    if (seen.size >= maxSeen) for (const [k, t] of seen) if (t < now || seen.size >= maxSeen) seen.delete(k);
    seen.set(key, until);
    return true;
  };
  const withoutQuery = (u) => {
    const url = URL.parse(u);
    if (!url) return undefined;
    url.search = '';
    url.hash = '';
    return url.href;
  };

  /** @returns {Promise<[string, string] | undefined>} [error, description] when refused */
  async function check(req, dpopScheme, token, jkt) {
    if (!jkt && !dpopScheme) return undefined;
    if (!dpopScheme) return ['invalid_token', 'the access token is DPoP-bound: send it with the DPoP scheme and a DPoP proof'];
    if (typeof jkt !== 'string') return ['invalid_token', 'the access token is not DPoP-bound'];
    const proof = headerOf(req, 'dpop');
    if (typeof proof !== 'string' || proof.includes(',')) return ['invalid_dpop_proof', 'exactly one DPoP proof is required'];
    let payload;
    let header;
    try {
      ({ payload, protectedHeader: header } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms }));
    } catch {
      return ['invalid_dpop_proof', 'the DPoP proof is invalid'];
    }
    const now = Math.floor(Date.now() / 1000);
    if (header.jwk?.d !== undefined) return ['invalid_dpop_proof', 'the DPoP proof carries a private key'];
    if (typeof payload.jti !== 'string' || !payload.jti || typeof payload.iat !== 'number') {
      return ['invalid_dpop_proof', 'the DPoP proof needs jti and iat'];
    }
    if (Math.abs(now - payload.iat) > window) return ['invalid_dpop_proof', 'the DPoP proof iat is not recent enough'];
    if (payload.htm !== req.method) return ['invalid_dpop_proof', 'the DPoP proof htm does not match the request'];
    if (typeof payload.htu !== 'string' || withoutQuery(payload.htu) !== withoutQuery(publicUrl(req))) {
      return ['invalid_dpop_proof', 'the DPoP proof htu does not match the request'];
    }
    if (payload.ath !== createHash('sha256').update(token).digest('base64url')) {
      return ['invalid_dpop_proof', 'the DPoP proof ath does not match the access token'];
    }
    if ((await calculateJwkThumbprint(header.jwk)) !== jkt) return ['invalid_token', 'the DPoP proof key is not the one the token is bound to'];
    if (!spend(`${jkt} ${payload.jti}`, payload.iat + window, now)) return ['invalid_dpop_proof', 'the DPoP proof was used before'];
    return undefined;
  }
  check.scheme = `DPoP algs="${algorithms.join(' ')}"`;
  return check;
}

const quote = (v) => `"${String(v).replace(/["\\]/g, '')}"`;

// RFC 6750 §3 (RFC 9449 §7.1 for DPoP): the challenge in WWW-Authenticate,
// the same error as JSON in the body.
function failure(status, realm, error, description, scope, retryAfter, scheme = 'Bearer') {
  const params = [realm && `realm=${quote(realm)}`, error && `error=${quote(error)}`, error && `error_description=${quote(description)}`, scope && `scope=${quote(scope)}`]
    .filter(Boolean)
    .join(', ');
  const headers = { 'WWW-Authenticate': params ? `${scheme}${scheme.includes(' ') ? ',' : ''} ${params}` : scheme };
  if (retryAfter) headers['Retry-After'] = retryAfter;
  return { ok: false, status, error: error ?? 'unauthorized', description, headers };
}

/** A request header from a node:http request or a Fetch API Request. */
function headerOf(req, name) {
  const headers = req?.headers;
  return typeof headers?.get === 'function' ? (headers.get(name) ?? undefined) : headers?.[name];
}

/**
 * Writes a failed verifyRequest result to a node:http (or Express) response.
 * @param {import('node:http').ServerResponse} res
 * @param {import('./index.d.ts').VerifyFailure} failed
 */
export function sendError(res, failed) {
  res.statusCode = failed.status;
  for (const [name, value] of Object.entries(failed.headers)) res.setHeader(name, value);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(JSON.stringify({ error: failed.error, error_description: failed.description }));
}
