// GET /verify: forward authentication for gateways that cannot verify JWTs
// themselves (NGINX auth_request, Caddy forward_auth, Traefik forwardAuth).
// The gateway forwards the client's Authorization header; the token is
// verified offline by the shared verifier (packages/verify) against this replica's
// own published keys, exactly like the admin API's first step. 200 carries
// the identity as headers for the gateway to copy upstream; 401/403 carry the
// RFC 6750 challenge for the gateway to pass back to the client.
//
// Query parameters (set in the gateway's configuration, not by clients):
//   required_scope=a b   every listed scope (403 insufficient_scope otherwise)
//   required_role=r1 r2  at least one listed role (403 otherwise)
//   check_revocation=1   also ask Postgres whether the token's login still
//                        holds (SessionTruth, as the admin API does); answers
//                        are cached per login for FORWARD_AUTH_CACHE_SECONDS,
//                        so a revocation is seen within that time.
//
// Status codes are only 200, 401, 403 and 503: NGINX's auth_request turns
// any other answer into a 500, so a malformed Authorization header is a 401
// with error="invalid_request" here (RFC 6750 §3.1 says SHOULD 400).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import type { SessionTruth } from '../tokens/sessions.ts';
import { requireAuth, requireRole, requireScope, type AuthenticatedRequest, type AuthInfo } from '@identity-service/verify';

/** The identity headers of a 200 answer (README "Gateways"). */
export const IDENTITY_HEADERS = {
  subject: 'X-Auth-Subject',
  clientId: 'X-Auth-Client-Id',
  scope: 'X-Auth-Scope',
  roles: 'X-Auth-Roles',
} as const;

export type ForwardAuthDeps = {
  issuer: string;
  audience: string;
  keys: JWTVerifyGetKey;
  sessions: Pick<SessionTruth, 'check'>;
  /** Seconds a revocation answer is reused for the same login; 0 = ask Postgres every time. */
  cacheSeconds: number;
};

// RFC 6749 §3.3 scope tokens; role names as ROLES allows them.
const tokenList = (item: RegExp, what: string) =>
  z
    .string()
    .max(1024)
    .transform((v) => v.split(' ').filter(Boolean))
    .pipe(z.array(z.string().regex(item, `not a valid ${what}`)).min(1, `list at least one ${what}`))
    .optional();
const query = z.strictObject({
  required_scope: tokenList(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'scope'),
  required_role: tokenList(/^[a-z][a-z0-9_:.-]{0,63}$/, 'role name'),
  check_revocation: z.enum(['0', '1', 'false', 'true']).optional(),
});

// Header values are our own signed claims; a value Node could not send (a
// control character an admin put in a role) is left out, never a 500.
const HEADER_SAFE = /^[\x20-\x7E]*$/;
const headerValue = (values: string[], sep: string) => values.filter((v) => HEADER_SAFE.test(v) && !v.includes(sep)).join(sep);

/**
 * The login's verdict from Postgres, remembered for `seconds` per session
 * stamp (subject, client, generation, epoch): a revocation bumps the
 * generation or epoch in Postgres, which a cached "still holds" stops
 * matching only once it expires. Failures are never cached.
 */
class RevocationCache {
  readonly #verdicts = new Map<string, { revoked: boolean; until: number }>();
  readonly #sessions: Pick<SessionTruth, 'check'>;
  readonly #ttlMs: number;
  static readonly MAX_ENTRIES = 10_000;

  constructor(sessions: Pick<SessionTruth, 'check'>, seconds: number) {
    this.#sessions = sessions;
    this.#ttlMs = seconds * 1000;
  }

  async isRevoked(claims: AuthInfo['claims']): Promise<boolean> {
    if (this.#ttlMs === 0) return !(await this.#sessions.check(claims));
    const key = JSON.stringify([claims.sub, claims.client_id, claims.session_gen, claims.client_epoch]);
    // Taken before the read: a verdict read just before a revocation commits,
    // and stored after it, still expires within `seconds` of that commit.
    const now = Date.now();
    const hit = this.#verdicts.get(key);
    if (hit && hit.until > now) return hit.revoked;
    const revoked = !(await this.#sessions.check(claims));
    this.#verdicts.delete(key);
    if (this.#verdicts.size >= RevocationCache.MAX_ENTRIES) this.#verdicts.delete(this.#verdicts.keys().next().value!);
    this.#verdicts.set(key, { revoked, until: now + this.#ttlMs });
    return revoked;
  }
}

type Step = (req: AuthenticatedRequest, res: ServerResponse, next: () => void) => void | Promise<void>;

/** Runs a verifier middleware: true when it called next(), false when it answered (a challenge). */
function passes(step: Step, req: AuthenticatedRequest, res: ServerResponse): Promise<boolean> {
  return new Promise((resolve, reject) => {
    Promise.resolve(step(req, res, () => resolve(true))).then(() => resolve(false), reject);
  });
}

/** The query string as one value per name; a repeated name is refused (which one would count?). */
function queryOf(url: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const [name, value] of new URL(url, 'http://verify.invalid').searchParams) {
    if (Object.hasOwn(out, name)) return `${name}: given more than once`;
    out[name] = value;
  }
  return out;
}

/**
 * The GET /verify handler (plain node:http: src/http/public-app.ts serves it
 * beside /jwks, without express routing, because gateways call it on every
 * request they pass).
 */
export function forwardAuthHandler(deps: ForwardAuthDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const cache = new RevocationCache(deps.sessions, deps.cacheSeconds);
  const verifier = { issuer: deps.issuer, audience: deps.audience, keys: deps.keys };
  const offline = requireAuth(verifier);
  const checked = requireAuth({ ...verifier, isRevoked: (auth) => cache.isRevoked(auth.claims) });

  const handle = async (req: AuthenticatedRequest, res: ServerResponse) => {
    res.setHeader('Cache-Control', 'no-store');
    const raw = queryOf(req.url ?? '/');
    const parsed = typeof raw === 'string' ? undefined : query.safeParse(raw);
    if (!parsed?.success) {
      const issue = parsed?.error.issues[0];
      const field = !issue ? '' : String(issue.path[0] ?? '') || (issue.code === 'unrecognized_keys' ? issue.keys.join(',') : 'query');
      return refuse(res, 400, 'invalid_request', typeof raw === 'string' ? raw : `${field}: ${issue!.message}`);
    }
    const q = parsed.data;
    // A malformed header is the client's fault, answered as 401 (see the top of this file).
    const header = req.headers.authorization ?? '';
    if (/^Bearer(\s|$)/i.test(header) && !/^Bearer +[A-Za-z0-9\-._~+/]+=* *$/i.test(header)) {
      return refuse(res, 401, 'invalid_request', 'malformed Authorization header');
    }
    const steps: Step[] = [q.check_revocation === '1' || q.check_revocation === 'true' ? checked : offline];
    if (q.required_scope) steps.push(requireScope(...q.required_scope));
    if (q.required_role) steps.push(requireRole(...q.required_role));
    for (const step of steps) if (!(await passes(step, req, res))) return;

    const auth = req.auth!;
    res.setHeader(IDENTITY_HEADERS.subject, headerValue([auth.subject], ' '));
    res.setHeader(IDENTITY_HEADERS.clientId, headerValue([auth.clientId], ' '));
    res.setHeader(IDENTITY_HEADERS.scope, headerValue(auth.scopes, ' '));
    res.setHeader(IDENTITY_HEADERS.roles, headerValue(auth.roles, ','));
    res.statusCode = 200;
    res.end();
  };
  return (req, res) => {
    handle(req, res).catch(() => {
      // Not reached by any input (the verifier never throws); still never a stack trace.
      if (!res.headersSent) refuse(res, 500, 'server_error', 'unexpected error');
      else res.destroy();
    });
  };
}

// The verifier's challenge shape, for the answers it cannot give here.
function refuse(res: ServerResponse, status: 400 | 401 | 500, error: string, description: string) {
  res.statusCode = status;
  res.setHeader('WWW-Authenticate', `Bearer error="${error}", error_description="${description.replace(/["\\]/g, '')}"`);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.end(JSON.stringify({ error, error_description: description }));
}
