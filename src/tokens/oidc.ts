// The typed boundary with oidc-provider. Its TypeScript types do not cover
// everything this service touches (the per-request context, client metadata
// we add, the adapter contract, prototype hooks), so every cast between its
// world and ours is here, once, behind small typed functions. Errors cross the
// boundary here too: our catalogue errors (src/errors.ts) become
// oidc-provider errors with the same status, an RFC 6749 code and, for 429
// and 503, a Retry-After header.
import type { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Provider, { errors, type Adapter, type AdapterFactory, type KoaContextWithOIDC } from 'oidc-provider';
import { CATALOGUE, ServiceError, StoreUnavailable } from '../errors.ts';

export type OidcContext = KoaContextWithOIDC;

/** What this service reads of an oidc-provider client. */
export type OidcClient = {
  clientId: string;
  scope: string | undefined;
  trustedGateway: boolean;
  /** The client row's session epoch (grants record it; src/tokens/sessions.ts). */
  sessionEpoch: string | undefined;
  /** Resource indicators it may request besides the default audience. */
  allowedResources: string[];
  /** RFC 9449 §5.2: token requests must carry a DPoP proof. */
  dpopBound: boolean;
  /** May use the Authorization Challenge Endpoint (src/tokens/challenge-endpoint.ts). */
  firstParty: boolean;
  grantTypeAllowed(grantType: string): boolean;
};

type RawClient = {
  clientId: string;
  scope?: string;
  trusted_gateway?: unknown;
  session_epoch?: unknown;
  allowed_resources?: unknown;
  dpopBoundAccessTokens?: unknown;
  first_party?: unknown;
  grantTypeAllowed(g: string): boolean;
};
type RawOidc = {
  route?: string;
  params?: Record<string, unknown>;
  client?: RawClient;
  entities?: Record<string, unknown>;
};

const oidcOf = (ctx: OidcContext | undefined): RawOidc | undefined => ctx?.oidc as unknown as RawOidc | undefined;

/** The request being served (oidc-provider keeps it in AsyncLocalStorage), if any. */
export function currentContext(): OidcContext | undefined {
  return (Provider as unknown as { ctx?: OidcContext }).ctx;
}

export function routeOf(ctx: OidcContext | undefined): string | undefined {
  return oidcOf(ctx)?.route;
}

/** A request parameter as a string (undefined when absent or not a string). */
export function paramOf(ctx: OidcContext | undefined, name: string): string | undefined {
  const value = oidcOf(ctx)?.params?.[name];
  return typeof value === 'string' ? value : undefined;
}

/** Replaces a parsed request parameter (oidc-provider's own helpers do the same with `scope` and `resource`). */
export function setParam(ctx: OidcContext, name: string, value: string): void {
  const params = oidcOf(ctx)?.params;
  if (params) params[name] = value;
}

export function clientOf(ctx: OidcContext | undefined): OidcClient | undefined {
  const raw = oidcOf(ctx)?.client;
  return raw ? clientView(raw) : undefined;
}

/** Our view of a raw oidc-provider client (as oidc-provider hands it to its hooks). */
export function clientView(client: unknown): OidcClient {
  const raw = client as RawClient;
  return {
    clientId: raw.clientId,
    scope: raw.scope,
    trustedGateway: raw.trusted_gateway === true,
    sessionEpoch: typeof raw.session_epoch === 'string' ? raw.session_epoch : undefined,
    allowedResources: Array.isArray(raw.allowed_resources) ? raw.allowed_resources.filter((r): r is string => typeof r === 'string') : [],
    dpopBound: raw.dpopBoundAccessTokens === true,
    firstParty: raw.first_party === true,
    grantTypeAllowed: (g) => raw.grantTypeAllowed(g),
  };
}

/**
 * A parameter of the form body before oidc-provider parses it: the HTTP
 * layer leaves the validated body as a string on the request
 * (src/http/input-hardening.ts). Undefined when absent or not a form.
 */
export function formParamOf(ctx: OidcContext, name: string): string | undefined {
  const body = (ctx.req as { body?: unknown }).body;
  if (typeof body !== 'string') return undefined;
  return new URLSearchParams(body).get(name) ?? undefined;
}

/** One part of HTTP Basic client credentials: form-encoded (RFC 6749 §2.3.1); undefined if it does not decode. */
function formDecoded(part: string): string | undefined {
  try {
    return decodeURIComponent(part.replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
}

/**
 * HTTP Basic client credentials, as sent (not authenticated): undefined
 * without a Basic header, null when it has no `:`.
 */
export function basicCredentialsOf(ctx: OidcContext): { id: string | undefined; secret: string | undefined } | null | undefined {
  const [scheme, credentials] = (ctx.get('authorization') || '').split(' ');
  if (scheme?.toLowerCase() !== 'basic' || !credentials) return undefined;
  const decoded = Buffer.from(credentials, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { id: formDecoded(decoded.slice(0, colon)), secret: formDecoded(decoded.slice(colon + 1)) };
}

/**
 * The client id a request claims, before it is authenticated: from HTTP
 * Basic credentials, else the form's client_id. Only for keying limits and
 * events; oidc-provider does the authentication itself.
 */
export function claimedClientIdOf(ctx: OidcContext): string | undefined {
  const basic = basicCredentialsOf(ctx);
  return basic === undefined ? formParamOf(ctx, 'client_id') : basic?.id;
}

/** The raw client object, for oidc-provider's own constructors (tokens take the client itself). */
export function rawClientOf(ctx: OidcContext): NonNullable<KoaContextWithOIDC['oidc']['client']> {
  const client = ctx.oidc.client;
  if (!client) throw new errors.InvalidClient('client authentication is required');
  return client;
}

/** The entity oidc-provider loaded for this request (RefreshToken, Account, ...). */
export function entityOf<T>(ctx: OidcContext | undefined, name: string): T | undefined {
  return oidcOf(ctx)?.entities?.[name] as T | undefined;
}

/** Sets the Account entity, so extraTokenClaims sees the roles without another read. */
export function setAccount(ctx: OidcContext, account: { accountId: string; roles: string[] }): void {
  ctx.oidc.entity('Account', account as unknown as Parameters<KoaContextWithOIDC['oidc']['entity']>[1]);
}

/** The request id the HTTP layer assigned (src/http/request-id.ts). */
export function requestIdOf(ctx: OidcContext): string | null {
  const id = (ctx.req as { id?: unknown }).id;
  return typeof id === 'string' ? id : null;
}

/** When the first refresh token of this token's family was issued (oidc-provider's `iiat`). */
export function issuedAtOfFamily(token: object): number | undefined {
  const iiat = (token as { iiat?: unknown }).iiat;
  return typeof iiat === 'number' ? iiat : undefined;
}

/** Is this request a refresh-token grant, and by which client? */
export function refreshRequest(ctx: OidcContext | undefined): { clientId: string } | undefined {
  const client = clientOf(ctx);
  if (routeOf(ctx) !== 'token' || paramOf(ctx, 'grant_type') !== 'refresh_token' || !client) return undefined;
  return { clientId: client.clientId };
}

/** A catalogue error on an OAuth endpoint: same status, the RFC 6749 code, our description. */
export class CatalogueError extends errors.OIDCProviderError {
  declare error_description: string;
  readonly source: ServiceError;

  constructor(source: ServiceError) {
    super(CATALOGUE[source.code].status, CATALOGUE[source.code].oauth, { cause: source });
    this.source = source;
    // oidc-provider hides 5xx descriptions; ours are written for clients, bugs excepted.
    this.expose = source.code !== 'server_error';
    this.error_description = source.message;
  }

  /** The store whose outage this is, if it is one (for logs and metrics). */
  get store(): StoreUnavailable['store'] | undefined {
    return this.source instanceof StoreUnavailable ? this.source.store : undefined;
  }
}

/**
 * Converts what our code throws into what oidc-provider renders: catalogue
 * errors become CatalogueError (with Retry-After on the response), its own
 * errors pass, and anything else (a bug) stays as it is: a logged 500.
 */
export function toOAuthError(err: unknown): unknown {
  if (!(err instanceof ServiceError)) return err;
  if (err.retryAfter !== undefined) currentContext()?.set('Retry-After', String(err.retryAfter));
  return new CatalogueError(err);
}

/** Runs `op` at the oidc-provider boundary (adapters, findAccount, grants). */
export async function atBoundary<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw toOAuthError(err);
  }
}

const { default: als } = (await import('oidc-provider/lib/helpers/als.js' as string)) as { default: AsyncLocalStorage<OidcContext> };

/**
 * Runs `fn` for a request no oidc-provider route matched (our own endpoint
 * inside its app, at `selfUrl`) as its routes run: with ctx.oidc and the
 * request in its AsyncLocalStorage, so its models (Grant, AuthorizationCode),
 * its DPoP proof validation and our adapters see the request.
 */
export function withProviderContext<T>(provider: Provider, ctx: OidcContext, selfUrl: string, fn: () => Promise<T>): Promise<T> {
  const oidc = new provider.OIDCContext(ctx as unknown as ConstructorParameters<Provider['OIDCContext']>[0]);
  // Its URL for this unnamed route (a DPoP proof's `htu` is compared with it).
  Object.defineProperty(oidc, 'urlFor', { value: () => selfUrl });
  Object.defineProperty(ctx, 'oidc', { value: oidc, configurable: true });
  return als.run(ctx, fn);
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** The provider as a node:http request handler. */
export function requestHandlerOf(provider: Provider): RequestHandler {
  return provider.callback() as unknown as RequestHandler;
}

/** An adapter factory from our per-model adapters. */
export function adapterFactory(forModel: (model: string) => Adapter): AdapterFactory {
  return forModel as unknown as AdapterFactory;
}

/** Our adapters return plain payloads; oidc-provider's Adapter type wants its own. */
export function asAdapter(adapter: object): Adapter {
  return adapter as Adapter;
}

/** Refresh token values come from `generate(grantId)` (the Redis layout needs the grant id in the value). */
export function refreshTokenValues(provider: Provider, generate: (grantId: string | undefined) => string): void {
  const prototype = provider.RefreshToken.prototype as unknown as { generateTokenId(this: { grantId?: string }): string };
  prototype.generateTokenId = function generateTokenId() {
    return generate(this.grantId);
  };
}

/** What findAccount and extraTokenClaims learn of the token they are called for. */
export function tokenFacts(token: unknown): { kind: string | undefined; grantId: string | undefined; accountId: string | undefined } {
  const t = (token ?? {}) as { kind?: unknown; grantId?: unknown; accountId?: unknown };
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return { kind: str(t.kind), grantId: str(t.grantId), accountId: str(t.accountId) };
}

/** Client secrets are stored as digests: oidc-provider must compare through `matches`. */
export function compareClientSecretWith(provider: Provider, matches: (stored: string | undefined, presented: string) => boolean): void {
  provider.Client.prototype.compareClientSecret = function compareClientSecret(this: { clientSecret?: string }, actual: string) {
    return matches(this.clientSecret, actual);
  } as unknown as typeof provider.Client.prototype.compareClientSecret;
}

/** Lets oidc-provider (Koa) derive ctx.ip from X-Forwarded-For for exactly `hops` proxies. */
export function trustProxyHops(provider: Provider, hops: number): void {
  const app = provider as unknown as { proxy: boolean; maxIpsCount: number };
  app.proxy = hops > 0;
  app.maxIpsCount = hops;
}
