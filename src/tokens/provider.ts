// oidc-provider, configured in this one file: every option, the password grant
// registration, the storage adapter, the hardening hooks and the response
// header middleware. The service is an OAuth 2 token service: no interactive
// login, no ID tokens; password, refresh_token and client_credentials grants;
// JWT access tokens (RFC 9068) for one resource server; rotating refresh
// tokens. A new Provider is built whenever the signing key changes
// (src/tokens/key-rotation.ts), so everything attached to it is attached here.
import type { JWK, JWTVerifyGetKey } from 'jose';
import Provider, { errors, type Adapter, type KoaContextWithOIDC } from 'oidc-provider';
import type { LoginSource } from '../accounts/login.ts';
import type { Account } from '../accounts/users.ts';
import { CLIENT_ID, GRANT_TYPES, secretMatches } from '../clients/index.ts';
import { deriveKey } from '../lib/crypto.ts';
import type { Config } from '../config/index.ts';
import type { SigningAlg } from '../keys/keystore.ts';
import type { Logger } from '../observability/log.ts';
import { countStoreError, type Metrics } from '../observability/metrics.ts';
import { StoreUnavailable } from '../errors.ts';
import type { AuditLog } from '../security/audit.ts';
import type { ClientAuthThrottle } from '../security/client-auth.ts';
import type { SecurityEvents } from '../security/events.ts';
import {
  adapterFactory,
  atBoundary,
  CatalogueError,
  claimedClientIdOf,
  clientOf,
  clientView,
  compareClientSecretWith,
  entityOf,
  formParamOf,
  issuedAtOfFamily,
  paramOf,
  refreshTokenValues,
  requestIdOf,
  routeOf,
  setParam,
  tokenFacts,
  trustProxyHops,
  type OidcContext,
} from './oidc.ts';
import { CHALLENGE_PATH, challengeEndpoint } from './challenge-endpoint.ts';
import { MFA_GRANT_PARAMS, MFA_GRANT_TYPES, mfaGrant, type MfaGrantDeps } from './mfa-grant.ts';
import { passwordGrant, PASSWORD_GRANT_PARAMS } from './password-grant.ts';
import { jwtTokens } from './jwt-tokens.ts';
import { refreshGrace } from './refresh-grace.ts';
import { grantedScope } from './scopes.ts';
import { refreshTokenValue, RefreshTokenReused } from './redis-adapter.ts';
import { grantStampOf, stampClaims, stampHolds, stampingGrants, STAMP_CLAIMS, type SessionTruth } from './sessions.ts';

export type ProviderDeps = {
  config: Config;
  /** Storage for every model but Client: Redis in production, memory in development. */
  adapterFor(model: string): Adapter;
  /** Client lookups (Postgres). */
  clients: Adapter;
  /** The guarded, audited password check. */
  login(source: LoginSource, username: string, password: string): Promise<Account | null>;
  /** The second factor: tickets (mfa_token, auth_session), the account's state, the guarded check. */
  mfa: Pick<MfaGrantDeps, 'tickets' | 'mfaState' | 'checkSecondFactor'>;
  /** The active account behind a token, or null (gone or disabled): refresh re-reads it. */
  findAccount(id: string): Promise<Account | null>;
  /**
   * Starts reading, at client authentication, the login a presented token
   * names (Redis token store only): resolves to its grant, or undefined.
   */
  prefetchLogin?(ctx: OidcContext, token: string): Promise<{ accountId?: unknown } | undefined>;
  /** Starts reading, at client authentication, the client row a request claims. */
  prefetchClient?(ctx: OidcContext, clientId: string): void;
  /** Limits on failed client authentication. */
  clientAuth: ClientAuthThrottle;
  events: SecurityEvents;
  audit: AuditLog;
  metrics: Metrics;
  logger: Logger;
  /** This replica's published keys, for JWT access tokens at introspection and revocation. */
  verificationKeys(): JWTVerifyGetKey;
  /** The session truth (Postgres) for JWT access tokens at introspection. */
  sessions: Pick<SessionTruth, 'check' | 'clientHolds'>;
};

export function createProvider(deps: ProviderDeps, signingKey: JWK): Provider {
  const { config } = deps;
  // The key table decides the algorithm (src/keys/lifecycle.ts); SIGNING_ALG only picks the first key's.
  const alg = (signingKey.alg ?? config.signingAlg) as SigningAlg;

  // Two resource servers: the default audience, for every client, and the
  // admin API's, only for clients an admin allowed it (RFC 8707 `resource`).
  const resourceServerInfo = async (ctx: OidcContext, resource: string, rawClient: unknown) => {
    const client = clientView(rawClient);
    const allowed = resource === config.audience || (resource === config.adminAudience && client.allowedResources.includes(resource));
    if (!allowed) throw new errors.InvalidTarget('the client may not request this resource');
    // client_credentials (oidc-provider's grant) asks this hook before it
    // reads `scope`: the password grant's scope rule applies (src/tokens/scopes.ts).
    if (routeOf(ctx) === 'token' && paramOf(ctx, 'grant_type') === 'client_credentials') {
      setParam(ctx, 'scope', grantedScope(client.scope, paramOf(ctx, 'scope')));
    }
    return {
      scope: client.scope ?? '',
      audience: resource,
      accessTokenTTL: config.accessTokenTtl,
      accessTokenFormat: 'jwt' as const,
      jwt: { sign: { alg } },
    };
  };
  const findAccount = (id: string) => atBoundary(() => deps.findAccount(id));
  // The account row, read once per request: started by `doors` as soon as
  // the presented token's login is read (see prefetch below), else here.
  const accountFor = async (ctx: OidcContext | undefined, id: string) => {
    const early = ctx && (await prefetchedAccounts.get(ctx));
    return early?.id === id ? early.account : findAccount(id);
  };
  // A grant is alive only while its stamp matches the account row just read
  // and the client row client authentication read (src/tokens/sessions.ts).
  const sessionHolds = (ctx: OidcContext, grantId: string | undefined, account: Account | null) =>
    stampHolds(grantStampOf(ctx, grantId), account, clientOf(ctx)?.sessionEpoch);

  // Cookies are unused (no interactive flows) but oidc-provider wants keys;
  // derive them from the KEK so every replica agrees without another secret.
  const cookieKey = deriveKey(config.keyEncryptionKey ?? Buffer.alloc(32), 'identity cookie keys').toString('base64url');

  const provider = new Provider(config.issuer, {
    adapter: adapterFactory((model) =>
      model === 'Client' ? deps.clients : model === 'Grant' ? stampingGrants(deps.adapterFor(model)) : deps.adapterFor(model),
    ),
    clients: [],
    jwks: { keys: [signingKey] },
    cookies: { keys: [cookieKey] },
    scopes: ['offline_access', ...config.scopes],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    // 'code' only for first-party clients' authorization codes from the
    // challenge endpoint (src/tokens/challenge-endpoint.ts); /auth stays closed.
    responseTypes: ['none', 'code'],
    // Codes from the challenge endpoint: a refresh token whenever the client may refresh (as the password grant).
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    clientDefaults: { id_token_signed_response_alg: alg, grant_types: [], response_types: [] },
    // CORS is off unless CORS_ORIGINS lists the origin (see responseHeaders below).
    clientBasedCORS: (_ctx, origin) => config.corsOrigins.includes(origin),
    // From the client row (src/tokens/client-adapter.ts): gateways allowed to
    // send the end user's IP (src/security/client-ip.ts), the session epoch
    // grants record, the extra resources the client may request.
    extraClientMetadata: {
      properties: ['trusted_gateway', 'session_epoch', 'allowed_resources', 'first_party'],
      validator(_ctx, key, value) {
        if (value === undefined) return;
        if ((key === 'trusted_gateway' || key === 'first_party') && typeof value !== 'boolean') {
          throw new errors.InvalidClientMetadata(`${key} must be a boolean`);
        }
        if (key === 'session_epoch' && typeof value !== 'string') throw new errors.InvalidClientMetadata('session_epoch must be a string');
        if (key === 'allowed_resources' && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
          throw new errors.InvalidClientMetadata('allowed_resources must be a list of strings');
        }
      },
    },
    enabledJWA: {
      authorizationSigningAlgValues: [alg],
      idTokenSigningAlgValues: [alg],
      introspectionSigningAlgValues: [alg],
      userinfoSigningAlgValues: [alg],
    },
    features: {
      // No browser flows: no interactions, logout or pushed authorization
      // requests (their endpoints are not mounted, discovery omits them);
      // /auth, which oidc-provider always mounts, is closed by `doors` below.
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      deviceFlow: { enabled: false },
      registration: { enabled: false },
      clientCredentials: { enabled: true },
      // Refresh tokens are the only introspectable tokens (access tokens are
      // JWTs, verified offline), so a client may introspect only its own.
      // A refresh token of a revoked session introspects inactive: the same
      // truth as refresh (one Postgres read of the account).
      introspection: {
        enabled: true,
        allowedPolicy: async (ctx, client, token) => {
          if (token.clientId !== client.clientId) return false;
          const { kind, grantId, accountId } = tokenFacts(token);
          return kind !== 'RefreshToken' || (!!accountId && sessionHolds(ctx, grantId, await accountFor(ctx, accountId)));
        },
      },
      // RFC 7009 §2.1: another client's token is refused, not silently kept.
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => {
          if (token.clientId !== client.clientId) throw new errors.UnauthorizedClient('the token was not issued to this client');
          return true;
        },
      },
      userinfo: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => config.audience,
        getResourceServerInfo: resourceServerInfo,
        useGrantedResource: () => true,
      },
    },
    rotateRefreshToken: true,
    ttl: {
      AccessToken: config.accessTokenTtl,
      ClientCredentials: config.accessTokenTtl,
      // The grant bounds the whole family: its TTL is the absolute lifetime.
      Grant: config.refreshTokenAbsoluteTtl,
      // Each refresh token lives for the idle lifetime, never past the
      // family's absolute end (iiat = when the first token was issued).
      RefreshToken(_ctx, token) {
        const iiat = issuedAtOfFamily(token) ?? Math.floor(Date.now() / 1000);
        return refreshTokenTtl(config, iiat, Math.floor(Date.now() / 1000));
      },
      Interaction: 60,
      Session: 60,
    },
    // Refresh: the account row (gone, not active, or a newer session
    // generation) and the client's epoch decide whether the grant still holds.
    async findAccount(ctx, sub, token) {
      const account = await accountFor(ctx, sub);
      if (!account || !sessionHolds(ctx, tokenFacts(token).grantId, account)) return undefined;
      return { ...account, claims: async () => ({ sub: account.accountId }) };
    },
    async extraTokenClaims(ctx, token) {
      // A client_credentials token carries its client's epoch: introspection
      // answers inactive once the client is deleted, re-created or its sessions revoked.
      if (token.kind === 'ClientCredentials') return { [STAMP_CLAIMS.clientEpoch]: clientOf(ctx)?.sessionEpoch };
      if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
      const account = entityOf<Account>(ctx, 'Account') ?? (await accountFor(ctx, token.accountId));
      // grant_id lets a gateway drop a revoked login's access tokens early;
      // the stamp lets the admin API (and the verifier's hook) check the session.
      return {
        roles: account?.roles ?? [],
        ...(token.grantId ? { grant_id: token.grantId } : {}),
        ...stampClaims(grantStampOf(ctx, token.grantId)),
      };
    },
    async renderError(ctx, out) {
      ctx.type = 'json';
      ctx.body = out;
    },
  });

  compareClientSecretWith(provider, secretMatches);
  trustProxyHops(provider, config.trustProxyHops);
  refreshTokenValues(provider, refreshTokenValue);

  const mfa = { ...deps.mfa, events: deps.events, findAccount: deps.findAccount, resourceServerInfo };
  provider.registerGrantType(
    'password',
    passwordGrant(provider, { ...mfa, audience: config.audience, login: deps.login }),
    PASSWORD_GRANT_PARAMS,
  );
  // The second factor after mfa_required (src/tokens/mfa-grant.ts).
  for (const grantType of MFA_GRANT_TYPES) {
    provider.registerGrantType(grantType, mfaGrant(provider, mfa, grantType), MFA_GRANT_PARAMS[grantType]);
  }

  provider.use(responseHeaders(config.corsOrigins));
  provider.use(refreshGrace);
  provider.use(rfcErrorShim);
  provider.use(
    jwtTokens(provider, {
      issuer: config.issuer,
      keys: deps.verificationKeys,
      sessions: deps.sessions,
      introspectors: config.introspectionClients,
      logger: deps.logger,
    }),
  );
  provider.use(doors(deps, (ctx, grant) => prefetchedAccounts.set(ctx, prefetchAccount(grant, findAccount))));
  provider.use(
    challengeEndpoint(provider, {
      ...mfa,
      issuer: config.issuer,
      audience: config.audience,
      logger: deps.logger,
      login: deps.login,
      async authenticate(_ctx, id, secret) {
        if (!id || !secret || !CLIENT_ID.test(id)) return null;
        const client = await provider.Client.find(id).catch(() => undefined);
        return client?.compareClientSecret(secret) ? client : null;
      },
    }),
  );
  observe(provider, deps);
  return provider;
}

// Per request: the account read started for the presented token's login.
type EarlyAccount = { id: string; account: Promise<Account | null> } | undefined;
const prefetchedAccounts = new WeakMap<object, Promise<EarlyAccount>>();

function prefetchAccount(grant: Promise<{ accountId?: unknown } | undefined>, find: (id: string) => Promise<Account | null>): Promise<EarlyAccount> {
  return grant.then((g) => {
    if (typeof g?.accountId !== 'string') return undefined;
    const account = find(g.accountId);
    account.catch(() => undefined); // awaited, and its failure reported, by the request
    return { id: g.accountId, account };
  });
}

/** Seconds a new refresh token lives: the idle lifetime, never past the family's absolute end. Pure. */
export function refreshTokenTtl(config: Pick<Config, 'refreshTokenIdleTtl' | 'refreshTokenAbsoluteTtl'>, iiat: number, now: number): number {
  const left = iiat + config.refreshTokenAbsoluteTtl - now;
  return Math.max(1, Math.min(config.refreshTokenIdleTtl, left));
}

const NO_STORE_ROUTES = new Set(['token', 'introspection', 'revocation']);

// Response headers oidc-provider does not set the way we want:
// - CORS: oidc-provider reflects any Origin on discovery, JWKS and token
//   endpoints. Here CORS is off unless CORS_ORIGINS lists the origin; an
//   allowed origin is echoed alone, never with credentials.
// - token, introspection and revocation answers are never cached (RFC 6749 §5.1).
function responseHeaders(corsOrigins: readonly string[]) {
  const allowed = new Set(corsOrigins);
  return async function headers(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
    await next();
    const origin = ctx.get('Origin');
    const corsHeaders = Object.keys(ctx.response.headers).filter((h) => h.toLowerCase().startsWith('access-control-'));
    if (origin && allowed.has(origin)) {
      if (corsHeaders.length) ctx.set('Access-Control-Allow-Origin', origin);
      ctx.remove('Access-Control-Allow-Credentials');
    } else {
      for (const h of corsHeaders) ctx.remove(h);
    }
    const route = routeOf(ctx);
    if (route && NO_STORE_ROUTES.has(route)) {
      ctx.set('Cache-Control', 'no-store');
      ctx.set('Pragma', 'no-cache');
    }
  };
}

// Corrections to oidc-provider's token endpoint errors, for RFC 6749 §5.2:
// a client using a grant type it is not registered for gets
// `unauthorized_client`, a request without client authentication gets 401
// `invalid_client` (oidc-provider says invalid_request to both).
const NO_CLIENT_AUTH = 'no client authentication mechanism provided';
async function rfcErrorShim(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next();
  const body = ctx.body as { error?: string; error_description?: string } | undefined;
  const client = clientOf(ctx);
  const grantType = paramOf(ctx, 'grant_type');
  if (ctx.status === 400 && body?.error === 'invalid_request' && client && grantType && !client.grantTypeAllowed(grantType)) {
    ctx.body = { error: 'unauthorized_client', error_description: 'the client is not allowed this grant type' };
  }
  // No client authentication at all is a failed client authentication (§5.2: 401 invalid_client).
  if (ctx.status === 400 && body?.error === 'invalid_request' && !client && body.error_description === NO_CLIENT_AUTH) {
    ctx.status = 401;
    ctx.body = { error: 'invalid_client', error_description: 'client authentication is required' };
    ctx.set('WWW-Authenticate', 'Basic realm="token"');
  }
}

// Metric labels take known values only: any other grant_type is `other`.
const KNOWN_GRANT_TYPES: ReadonlySet<string> = new Set([...GRANT_TYPES, ...MFA_GRANT_TYPES, 'authorization_code']);
const grantTypeOf = (ctx: OidcContext, raw = paramOf(ctx, 'grant_type')) => (raw && KNOWN_GRANT_TYPES.has(raw) ? raw : 'other');

// Interactive endpoints oidc-provider mounts whatever the configuration
// (authorization, its resume step, logout confirmation): this service has no
// browser flows, so they answer 404 like any unknown path.
const CLOSED_PATHS = /^\/(?:auth(?:\/.*)?|session\/end\/confirm)$/;
// Where clients authenticate.
const CLIENT_AUTH_PATHS: ReadonlySet<string> = new Set(['/token', '/token/introspection', '/token/revocation', CHALLENGE_PATH]);

// What every request to oidc-provider passes first, cheapest check first:
// 1. closed interactive endpoints: 404;
//    (a password grant while the hash gate is full never gets here: it is
//    shed in express, before this koa stack, src/http/shed-door.ts);
// 2. client-authentication limits (src/security/client-auth.ts): 429 before
//    oidc-provider checks the secret; failures counted from the answer.
// Discovery stops listing the closed authorization endpoint.
function doors(deps: ProviderDeps, onLogin: (ctx: OidcContext, grant: Promise<{ accountId?: unknown } | undefined>) => void) {
  const { clientAuth, events, metrics, logger } = deps;
  const refuse = (ctx: OidcContext, status: 429 | 503, description: string, retryAfter: number) => {
    ctx.status = status;
    ctx.type = 'json';
    ctx.body = { error: 'temporarily_unavailable', error_description: description };
    ctx.set('Retry-After', String(retryAfter));
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
  };
  // Counting must not turn an answer already decided into an error.
  const quietly = (work: Promise<void>) =>
    work.catch((err: unknown) => logger.warn({ err: { message: (err as Error).message } }, 'client authentication not counted'));

  return async function doors(ctx: OidcContext, next: () => Promise<void>): Promise<void> {
    if (CLOSED_PATHS.test(ctx.path)) return;
    if (ctx.method !== 'POST' || !CLIENT_AUTH_PATHS.has(ctx.path)) {
      await next();
      if (routeOf(ctx) === 'discovery' && ctx.body && typeof ctx.body === 'object') {
        const body = ctx.body as Record<string, unknown>;
        trimDiscovery(body, deps.config.scopes);
        // draft-ietf-oauth-first-party-apps §8.
        body.authorization_challenge_endpoint = `${ctx.oidc.issuer}${CHALLENGE_PATH}`;
      }
      return;
    }
    const grantType = ctx.path === '/token' ? formParamOf(ctx, 'grant_type') : undefined;
    const claimed = claimedClientIdOf(ctx);
    const clientId = claimed && CLIENT_ID.test(claimed) ? claimed : null;
    // What client authentication and the grant will read (the client row,
    // the presented token's login, then its account) starts now, beside the
    // limit check: one Redis write carries the limit reads and the login
    // read, and the Postgres reads overlap it. Reads only, used only by this
    // request, and only once authentication has passed.
    if (clientId) deps.prefetchClient?.(ctx, clientId);
    const presented = ctx.path === '/token/introspection' ? formParamOf(ctx, 'token') : grantType === 'refresh_token' ? formParamOf(ctx, 'refresh_token') : undefined;
    if (presented && deps.prefetchLogin) onLogin(ctx, deps.prefetchLogin(ctx, presented));
    let verdict;
    try {
      verdict = await clientAuth.check(clientId, ctx.ip);
    } catch (err) {
      if (!(err instanceof StoreUnavailable)) throw err;
      countStoreError(metrics, 'redis');
      return refuse(ctx, 503, err.message, 1);
    }
    if (verdict.kind === 'rate_limited') {
      events.emit('client_auth.rate_limited', { clientId, ip: ctx.ip, scope: verdict.scope, retryAfterSeconds: verdict.retryAfterSeconds });
      if (ctx.path === '/token') metrics.tokenRequests.inc({ grant_type: grantTypeOf(ctx, grantType), outcome: 'temporarily_unavailable' });
      const what = verdict.scope === 'ip' ? 'from this address' : 'for this client';
      return refuse(ctx, 429, `too many failed client authentications ${what}`, verdict.retryAfterSeconds);
    }
    await next();
    if (ctx.status === 401) {
      events.emit('client_auth.failed', { clientId, ip: ctx.ip });
      await quietly(clientAuth.failed(clientId, ctx.ip));
    } else {
      const client = clientOf(ctx);
      if (client) await quietly(clientAuth.succeeded(client.clientId, ctx.ip));
    }
  };
}

// Discovery lists what a client of this service can use, nothing else:
// no authorization endpoint (closed above), no browser-flow or ID-token
// features, only the configured scopes (oidc-provider adds `openid`), and
// how clients authenticate at introspection and revocation (RFC 8414 §2).
// Kept although nothing uses them: the fields OpenID Discovery requires
// (response_types_supported, subject_types_supported,
// id_token_signing_alg_values_supported).
const UNUSABLE_METADATA = [
  'authorization_endpoint',
  'authorization_response_iss_parameter_supported',
  'claim_types_supported',
  'claims_parameter_supported',
  'claims_supported',
  'code_challenge_methods_supported',
  'request_uri_parameter_supported',
  'response_modes_supported',
];
function trimDiscovery(meta: Record<string, unknown>, scopes: readonly string[]): void {
  for (const key of UNUSABLE_METADATA) delete meta[key];
  meta.scopes_supported = [...scopes];
  const authMethods = meta.token_endpoint_auth_methods_supported;
  meta.introspection_endpoint_auth_methods_supported = authMethods;
  meta.revocation_endpoint_auth_methods_supported = authMethods;
}

// Metrics, logs and audit rows from oidc-provider's events.
function observe(provider: Provider, deps: ProviderDeps): void {
  const { metrics, logger, audit } = deps;
  const storeError = (err: unknown) => {
    if (err instanceof CatalogueError && err.store) {
      countStoreError(metrics, err.store);
      logger.warn({ store: err.store, err: { message: (err.source.cause as Error | undefined)?.message } }, `${err.store} unavailable`);
    }
  };
  provider.on('grant.success', (ctx: OidcContext) => {
    // mfa_required is answered by the password grant itself (a 400 with mfa_token).
    const outcome = ctx.status === 400 ? 'mfa_required' : 'success';
    metrics.tokenRequests.inc({ grant_type: grantTypeOf(ctx), outcome });
  });
  provider.on('grant.error', (ctx: OidcContext, err: errors.OIDCProviderError) => {
    metrics.tokenRequests.inc({ grant_type: grantTypeOf(ctx), outcome: err.error ?? 'unknown' });
    storeError(err);
    if (err instanceof RefreshTokenReused) {
      const client = clientOf(ctx);
      void audit.record({
        type: 'refresh.reuse_detected',
        outcome: 'failure',
        subject: err.accountId ?? null,
        clientId: client?.clientId ?? null,
        ip: ctx.ip,
        requestId: requestIdOf(ctx),
      });
    }
  });
  provider.on('introspection.error', (_ctx: OidcContext, err: unknown) => storeError(err));
  provider.on('revocation.error', (_ctx: OidcContext, err: unknown) => storeError(err));
  provider.on('server_error', (ctx: OidcContext, err: unknown) => {
    if (routeOf(ctx) === 'token') metrics.tokenRequests.inc({ grant_type: grantTypeOf(ctx), outcome: 'server_error' });
    logger.error({ err, reqId: requestIdOf(ctx) }, 'oidc-provider server_error');
  });
}
