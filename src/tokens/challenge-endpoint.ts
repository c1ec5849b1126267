// The Authorization Challenge Endpoint of OAuth 2.0 for First-Party
// Applications (draft-ietf-oauth-first-party-apps-04), for clients an admin
// flagged first-party (clients.first_party). The successor of the password
// grant: the password never travels to the token endpoint, the result is an
// authorization code bound to PKCE, exchanged at POST /token by
// oidc-provider's own authorization_code grant.
//
//   POST /authorize-challenge  (client authenticated as at /token)
//     response_type=code, username, password, code_challenge (S256),
//     code_challenge_method=S256, [scope], [resource]
//   → 200 {"authorization_code"}                                 no second factor
//   → 403 {"error":"insufficient_authorization", "auth_session"}  a second factor
//   POST /authorize-challenge  auth_session + otp (or recovery_code)
//   → 200 {"authorization_code"}
//   POST /token grant_type=authorization_code, code, code_verifier → tokens
//
// Unknown user, wrong password, inactive and throttled users get one answer
// (400 access_denied), after the same guarded password check as /token
// (src/accounts/login.ts). The auth_session is a ticket
// (src/tokens/mfa-tickets.ts): ≤ 5 minutes, bound to the client, the PKCE
// challenge and the DPoP key of the first request when one was used; a wrong
// auth_session is `invalid_session`. An account that must enroll a second
// factor first is sent to enroll (insufficient_authorization without
// auth_session; it enrolls through the password grant's mfa_token).
import { errors, type Provider } from 'oidc-provider';
import type { LoginSource } from '../accounts/login.ts';
import type { Account } from '../accounts/users.ts';
import { CATALOGUE, ServiceError } from '../errors.ts';
import type { Logger } from '../observability/log.ts';
import { endUserIp } from '../security/client-ip.ts';
import { senderKeyOf } from './dpop-binding.ts';
import { redeem, secondStep, spend, type MfaGrantDeps } from './mfa-grant.ts';
import { basicCredentialsOf, CatalogueError, clientView, rawClientOf, requestIdOf, withProviderContext, type OidcContext } from './oidc.ts';
import { issueUnder } from './sessions.ts';

export const CHALLENGE_PATH = '/authorize-challenge';
/** The redirect URI first-party clients are registered with (never redirected to: the code comes back in JSON). */
export const challengeRedirectUri = (issuer: string) => `${issuer}${CHALLENGE_PATH}`;

export type ChallengeDeps = MfaGrantDeps & {
  issuer: string;
  audience: string;
  logger: Logger;
  login(source: LoginSource, username: string, password: string): Promise<Account | null>;
  /** Client authentication, the same secrets and comparison as /token: the client, or null. */
  authenticate(ctx: OidcContext, clientId: string | undefined, secret: string | undefined): Promise<unknown>;
};

type Answer = { status: number; body: Record<string, unknown>; headers?: Record<string, string> };

class Refusal extends Error {
  readonly answer: Answer;
  constructor(status: number, error: string, description: string, extra: Record<string, unknown> = {}, headers?: Record<string, string>) {
    super(description);
    this.answer = { status, body: { error, error_description: description, ...extra }, ...(headers ? { headers } : {}) };
  }
}

const PARAMS = new Set([
  'client_id',
  'client_secret',
  'response_type',
  'username',
  'password',
  'scope',
  'resource',
  'code_challenge',
  'code_challenge_method',
  'auth_session',
  'otp',
  'recovery_code',
]);

type Credentials = { id: string | undefined; secret: string | undefined };

/**
 * Client credentials from HTTP Basic (RFC 6749 §2.3.1, form-encoded) or the
 * body (both advertised, as at /token), never both in one request (§2.3;
 * oidc-provider refuses that at /token too).
 */
function credentialsOf(ctx: OidcContext, form: Map<string, string>): Credentials {
  const basic = basicCredentialsOf(ctx);
  if (basic === undefined) return { id: form.get('client_id'), secret: form.get('client_secret') };
  if (form.has('client_secret')) {
    throw new Refusal(400, 'invalid_request', 'client authentication must only be provided using one mechanism');
  }
  if (basic === null) return { id: undefined, secret: undefined };
  if (form.has('client_id') && form.get('client_id') !== basic.id) {
    throw new Refusal(400, 'invalid_request', 'client_id does not match the authenticated client');
  }
  return basic;
}

function formOf(ctx: OidcContext): Map<string, string> {
  const body = (ctx.req as { body?: unknown }).body;
  if (typeof body !== 'string' || !ctx.is('application/x-www-form-urlencoded')) {
    throw new Refusal(400, 'invalid_request', 'the body must be application/x-www-form-urlencoded');
  }
  const form = new Map<string, string>();
  for (const [k, v] of new URLSearchParams(body)) {
    if (!PARAMS.has(k)) continue;
    if (form.has(k)) throw new Refusal(400, 'invalid_request', `'${k}' parameter must not be provided twice`);
    form.set(k, v);
  }
  return form;
}

export function challengeEndpoint(provider: Provider, deps: ChallengeDeps) {
  const denied = () => new Refusal(400, 'access_denied', 'invalid credentials');
  const invalidSession = () => new Refusal(400, 'invalid_session', 'the auth_session is invalid, expired or already used');

  type CodeTerms = {
    scope: string;
    resource: string;
    codeChallenge: string;
    dpopJkt?: string | undefined;
    /** After a second factor: spends the auth_session once the code is saved, before it is answered. */
    spend?: () => Promise<void>;
  };

  /** A Grant under the account's session stamp and an authorization code for it (oidc-provider's models). */
  async function issueCode(ctx: OidcContext, rawClient: unknown, account: Account, t: CodeTerms): Promise<Answer> {
    const client = clientView(rawClient);
    issueUnder(ctx, { generation: account.generation, clientEpoch: client.sessionEpoch ?? '' });
    const grant = new provider.Grant({ accountId: account.accountId, clientId: client.clientId });
    grant.addResourceScope(t.resource, t.scope);
    const grantId = await grant.save();
    const code = new provider.AuthorizationCode({
      accountId: account.accountId,
      client: rawClientOf(ctx),
      grantId,
      gty: 'authorization_code',
      scope: t.scope,
      resource: t.resource,
      codeChallenge: t.codeChallenge,
      codeChallengeMethod: 'S256',
      redirectUri: challengeRedirectUri(deps.issuer),
      ...(t.dpopJkt ? { dpopJkt: t.dpopJkt } : {}),
    });
    const value = await code.save();
    if (t.spend) {
      try {
        await t.spend();
      } catch (err) {
        await grant.destroy().catch(() => undefined); // the code is never answered; without its grant it is dead too
        throw err;
      }
    }
    return { status: 200, body: { authorization_code: value } };
  }

  async function answer(ctx: OidcContext): Promise<Answer> {
    const form = formOf(ctx);
    const { id, secret } = credentialsOf(ctx, form);
    const rawClient = await deps.authenticate(ctx, id, secret);
    if (!rawClient) {
      throw new Refusal(401, 'invalid_client', 'client authentication failed', {}, { 'WWW-Authenticate': 'Basic realm="identity"' });
    }
    ctx.oidc.entity('Client', rawClient as InstanceType<Provider['Client']>);
    const client = clientView(rawClient);
    if (!client.firstParty) throw new Refusal(400, 'unauthorized_client', 'the client is not a first-party client');
    const source: LoginSource = {
      clientId: client.clientId,
      ip: endUserIp({ header: (name) => ctx.get(name), ip: ctx.ip }, client, deps.events),
      requestId: requestIdOf(ctx),
    };
    // A DPoP proof (validated, replay refused): binds the auth_session and the code to its key.
    const jkt = await senderKeyOf(ctx);

    // A follow-up: the auth_session and the second factor.
    const authSession = form.get('auth_session');
    if (authSession !== undefined) {
      const otp = form.get('otp');
      const recovery = form.get('recovery_code');
      if (!otp === !recovery) {
        throw new Refusal(400, 'invalid_request', "send exactly one of 'otp' and 'recovery_code' with 'auth_session'");
      }
      // Bound to the DPoP key of the first request (draft §9.6.1): checked by redeem.
      const redeemed = await redeem(ctx, deps, 'auth_session', authSession, otp ? { otp } : { recoveryCode: recovery! }, jkt);
      if (!redeemed.ok && redeemed.failed === 'ticket') throw invalidSession();
      if (!redeemed.ok) {
        throw new Refusal(403, 'insufficient_authorization', 'the code is wrong or was already used', { auth_session: authSession });
      }
      const { account, ticket: t } = redeemed;
      const terms = { ...t, resource: t.resource ?? deps.audience, codeChallenge: t.codeChallenge!, spend: spend(deps, authSession, invalidSession) };
      return issueCode(ctx, rawClient, account, terms);
    }

    // The first request.
    if (form.get('response_type') !== 'code') throw new Refusal(400, 'invalid_request', "response_type must be 'code'");
    const codeChallenge = form.get('code_challenge');
    if (!codeChallenge || !/^[\w-]{43}$/.test(codeChallenge) || form.get('code_challenge_method') !== 'S256') {
      throw new Refusal(400, 'invalid_request', "PKCE is required: code_challenge (S256) with code_challenge_method=S256");
    }
    const username = form.get('username');
    const password = form.get('password');
    if (!username || !password) throw new Refusal(400, 'invalid_request', "missing required parameter 'username' or 'password'");
    const resource = form.get('resource') ?? deps.audience;
    await deps.resourceServerInfo(ctx, resource, rawClient);
    const allowed = new Set((client.scope ?? '').split(' ').filter(Boolean));
    const requested = form.has('scope') ? form.get('scope')!.split(' ').filter(Boolean) : [...allowed];
    if (requested.some((s) => !allowed.has(s))) throw new Refusal(400, 'invalid_scope', 'requested scope is not allowed');
    const scope = requested.join(' ');

    const account = await deps.login(source, username, password);
    if (!account) throw denied();
    const terms = { clientId: client.clientId, scope, resource, codeChallenge, ...(jkt ? { dpopJkt: jkt } : {}) };
    const next = await secondStep(deps, 'auth_session', account, terms, false);
    if (next?.purpose === 'enroll') {
      const description = "a second factor is required and none is enrolled: enroll one first (see the password grant's mfa_token)";
      throw new Refusal(403, 'insufficient_authorization', description);
    }
    if (next?.value) {
      const description = 'a second factor is required: send the auth_session with an otp or a recovery_code';
      throw new Refusal(403, 'insufficient_authorization', description, { auth_session: next.value });
    }
    return issueCode(ctx, rawClient, account, { scope, resource, codeChallenge, dpopJkt: jkt });
  }

  return async function authorizationChallenge(ctx: OidcContext, next: () => Promise<void>): Promise<void> {
    if (ctx.path !== CHALLENGE_PATH) return next();
    let out: Answer;
    if (ctx.method !== 'POST') {
      out = { status: 405, body: { error: 'invalid_request', error_description: 'use POST' }, headers: { Allow: 'POST' } };
    } else {
      try {
        out = await withProviderContext(provider, ctx, challengeRedirectUri(deps.issuer), () => answer(ctx));
      } catch (err) {
        out = toAnswer(err, deps.logger);
      }
    }
    ctx.status = out.status;
    ctx.type = 'json';
    ctx.body = out.body;
    for (const [k, v] of Object.entries(out.headers ?? {})) ctx.set(k, v);
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
  };
}

function toAnswer(err: unknown, logger: Logger): Answer {
  if (err instanceof Refusal) return err.answer;
  // Our catalogue errors, as thrown or as oidc-provider's boundary wrapped them (CatalogueError).
  const source = err instanceof ServiceError ? err : err instanceof CatalogueError ? err.source : undefined;
  if (source && source.code !== 'server_error') {
    const body = { error: CATALOGUE[source.code].oauth, error_description: source.message };
    return { status: source.status, body, ...(source.retryAfter !== undefined ? { headers: { 'Retry-After': String(source.retryAfter) } } : {}) };
  }
  if (err instanceof errors.OIDCProviderError && err.statusCode < 500) {
    return { status: err.statusCode, body: { error: err.error, error_description: err.error_description ?? err.message } };
  }
  logger.error({ err }, 'authorization challenge endpoint failed');
  return { status: 500, body: { error: 'server_error', error_description: 'internal error' } };
}
