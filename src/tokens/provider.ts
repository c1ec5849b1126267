// oidc-provider, configured as an OAuth 2 token service: no interactive login,
// no ID tokens; password, refresh_token and client_credentials grants; JWT
// access tokens (RFC 9068) for one resource server; rotating refresh tokens.
import { hkdfSync } from 'node:crypto';
import type { JWK } from 'jose';
import Provider, { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Account } from '../accounts/users.ts';
import type { Config } from '../config/index.ts';
import { secretMatches } from './clients.ts';
import { passwordGrant, PASSWORD_GRANT_PARAMS, type PasswordGrantDeps } from './password-grant.ts';

export type ProviderDeps = {
  config: Config;
  signingKeys: JWK[];
  /** Adapter factory: Redis in production, oidc-provider's memory store in development. */
  adapter: NonNullable<Configuration['adapter']>;
  authenticate: PasswordGrantDeps['authenticate'];
  findAccount(id: string): Promise<Account | null>;
};

export function createProvider(deps: ProviderDeps): Provider {
  const { config } = deps;

  const resourceServerInfo = async (_ctx: unknown, resource: string, client: { scope?: string }) => {
    if (resource !== config.audience) throw new errors.InvalidTarget();
    return {
      scope: client.scope ?? '',
      audience: config.audience,
      accessTokenTTL: config.accessTokenTtl,
      accessTokenFormat: 'jwt' as const,
      jwt: { sign: { alg: config.signingAlg } },
    };
  };

  // Cookies are unused (no interactive flows) but oidc-provider wants keys;
  // derive them from the KEK so every replica agrees without another secret.
  const cookieKey = Buffer.from(
    hkdfSync('sha256', config.keyEncryptionKey ?? Buffer.alloc(32), '', 'identity cookie keys', 32),
  ).toString('base64url');

  const provider = new Provider(config.issuer, {
    adapter: deps.adapter,
    clients: [],
    jwks: { keys: deps.signingKeys as never },
    cookies: { keys: [cookieKey] },
    scopes: ['offline_access', ...config.scopes],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    responseTypes: ['none'],
    clientDefaults: { id_token_signed_response_alg: config.signingAlg, grant_types: [], response_types: [] },
    // CORS is off unless CORS_ORIGINS lists the origin (see src/http/cors.ts).
    clientBasedCORS: (_ctx, origin) => config.corsOrigins.includes(origin),
    // Marks gateways allowed to send the end user's IP (src/security/client-ip.ts).
    extraClientMetadata: {
      properties: ['trusted_gateway'],
      validator(_ctx, key, value) {
        if (key === 'trusted_gateway' && value !== undefined && typeof value !== 'boolean') throw new errors.InvalidClientMetadata('trusted_gateway must be a boolean');
      },
    },
    enabledJWA: {
      authorizationSigningAlgValues: [config.signingAlg],
      idTokenSigningAlgValues: [config.signingAlg],
      introspectionSigningAlgValues: [config.signingAlg],
      userinfoSigningAlgValues: [config.signingAlg],
    } as never,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Refresh tokens are the only introspectable tokens (access tokens are
      // JWTs, verified offline), so a client may introspect only its own.
      introspection: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      userinfo: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => config.audience,
        getResourceServerInfo: resourceServerInfo as never,
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
        const iiat = (token as unknown as { iiat?: number }).iiat ?? Math.floor(Date.now() / 1000);
        const left = iiat + config.refreshTokenAbsoluteTtl - Math.floor(Date.now() / 1000);
        return Math.max(1, Math.min(config.refreshTokenIdleTtl, left));
      },
      Interaction: 60,
      Session: 60,
    },
    async findAccount(_ctx, sub) {
      const account = await deps.findAccount(sub);
      if (!account) return undefined;
      return { ...account, claims: async () => ({ sub: account.accountId }) };
    },
    async extraTokenClaims(ctx, token) {
      if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
      const account = (ctx?.oidc.entities.Account as unknown as Account | undefined) ?? (await deps.findAccount(token.accountId));
      // grant_id lets a gateway drop a revoked login's access tokens early.
      return { roles: account?.roles ?? [], ...(token.grantId ? { grant_id: token.grantId } : {}) };
    },
    async renderError(ctx, out) {
      ctx.type = 'json';
      ctx.body = out;
    },
  });

  // Client secrets are stored as a SHA-256 digest (see clients.ts), so the
  // comparison must hash what the client presents.
  provider.Client.prototype.compareClientSecret = function compareClientSecret(this: { clientSecret?: string }, actual: string) {
    return secretMatches(this.clientSecret, actual);
  } as never;

  provider.registerGrantType(
    'password',
    passwordGrant(provider, {
      audience: config.audience,
      authenticate: deps.authenticate,
      resourceServerInfo: resourceServerInfo as never,
    }) as never,
    PASSWORD_GRANT_PARAMS,
  );

  provider.use(rfcErrorShim);
  return provider;
}

// Two corrections to oidc-provider's token endpoint errors, for RFC 6749 §5.2:
// a client using a grant type it is not registered for gets
// `unauthorized_client` (oidc-provider says invalid_request); a 503 from the
// stores carries Retry-After.
async function rfcErrorShim(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
  await next();
  const body = ctx.body as { error?: string } | undefined;
  if (ctx.status === 503) ctx.set('Retry-After', '1');
  const { client, params } = (ctx.oidc ?? {}) as { client?: { grantTypeAllowed(g: string): boolean }; params?: { grant_type?: string } };
  if (
    ctx.status === 400 &&
    body?.error === 'invalid_request' &&
    client &&
    typeof params?.grant_type === 'string' &&
    !client.grantTypeAllowed(params.grant_type)
  ) {
    ctx.body = { error: 'unauthorized_client', error_description: 'the client is not allowed this grant type' };
  }
}
