// grant_type=password (RFC 6749 §4.3), registered on oidc-provider as a custom
// grant. oidc-provider has already authenticated the client, checked that it
// may use this grant and rejected duplicated parameters; this handler checks
// the user, records a grant and issues tokens the same way the built-in
// grants do (see oidc-provider lib/actions/grants).
//
// The password grant is deprecated (RFC 9700 §2.4, OAuth 2.1): it is only for
// confidential first-party clients an admin has allowed it. See README.
import { errors, type KoaContextWithOIDC, type Provider, type ResourceServer as ResourceServerInfo } from 'oidc-provider';
import type { Account } from '../accounts/users.ts';
import type { LoginClient } from '../security/login-guard.ts';

export const PASSWORD_GRANT_PARAMS = ['username', 'password', 'scope'];

export type PasswordGrantDeps = {
  audience: string;
  /** Checks the credentials behind the abuse defences (src/security/login-guard.ts); ctx lets the caller audit the attempt. */
  authenticate(ctx: KoaContextWithOIDC, client: LoginClient, username: string, password: string): Promise<Account | null>;
  resourceServerInfo(ctx: KoaContextWithOIDC, resource: string, client: unknown): Promise<ResourceServerInfo>;
};

export function passwordGrant(provider: Provider, deps: PasswordGrantDeps) {
  return async function passwordGrantHandler(ctx: KoaContextWithOIDC): Promise<void> {
    const { client, params } = ctx.oidc as unknown as {
      client: NonNullable<KoaContextWithOIDC['oidc']['client']>;
      params: Record<string, string | undefined>;
    };
    for (const name of ['username', 'password'] as const) {
      if (!params[name]) throw new errors.InvalidRequest(`missing required parameter '${name}'`);
    }

    const allowed = new Set((client.scope ?? '').split(' ').filter(Boolean));
    const requested = params.scope ? params.scope.split(' ').filter(Boolean) : [...allowed];
    const denied = requested.filter((s) => !allowed.has(s));
    if (denied.length) throw new errors.InvalidScope('requested scope is not allowed', denied.join(' '));
    const scope = requested.join(' ');

    const account = await deps.authenticate(ctx, client as unknown as LoginClient, params.username!, params.password!);
    // One message for every failure: unknown user, wrong password, inactive, throttled.
    if (!account) throw new errors.InvalidGrant('invalid credentials');
    ctx.oidc.entity('Account', account as never);

    const grant = new provider.Grant({ accountId: account.accountId, clientId: client.clientId });
    grant.addResourceScope(deps.audience, scope);
    const grantId = await grant.save();

    const resourceServer = new provider.ResourceServer(
      deps.audience,
      await deps.resourceServerInfo(ctx, deps.audience, client),
    );

    // The refresh token is recorded before any access token leaves: if Redis
    // cannot store it, the request fails and nothing is issued.
    let refreshToken: string | undefined;
    if (client.grantTypeAllowed('refresh_token')) {
      const rt = new provider.RefreshToken({
        accountId: account.accountId,
        client,
        grantId,
        gty: 'password',
        resource: deps.audience,
        rotations: 0,
        scope,
      });
      refreshToken = await rt.save();
    }

    const at = new provider.AccessToken({ accountId: account.accountId, client, grantId, gty: 'password', scope });
    at.resourceServer = resourceServer;
    const accessToken = await at.save();

    ctx.body = {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: at.expiration,
      ...(refreshToken ? { refresh_token: refreshToken } : {}),
      scope,
    };
  };
}
