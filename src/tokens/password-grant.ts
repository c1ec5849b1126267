// grant_type=password (RFC 6749 §4.3), registered on oidc-provider as a custom
// grant (src/tokens/provider.ts). oidc-provider has already authenticated the
// client, checked that it may use this grant and rejected duplicated
// parameters; this handler checks the user through the accounts layer's
// guarded login (src/accounts/login.ts), records a grant and issues tokens the
// same way the built-in grants do (see oidc-provider lib/actions/grants).
//
// The grant records the session stamp the login authenticated under (the
// account's generation, the client's epoch; src/tokens/sessions.ts). Once
// the grant and refresh token are saved, the generation is read again: a
// password change, reset or revocation that committed meanwhile refuses the
// login instead of leaving a session it would miss.
//
// The password grant is deprecated (RFC 9700 §2.4, OAuth 2.1): it is only for
// confidential first-party clients an admin has allowed it. See README.
import { errors, type Provider, type ResourceServer as ResourceServerInfo } from 'oidc-provider';
import type { LoginSource } from '../accounts/login.ts';
import type { Account } from '../accounts/users.ts';
import { endUserIp } from '../security/client-ip.ts';
import type { SecurityEvents } from '../security/events.ts';
import { clientOf, paramOf, rawClientOf, requestIdOf, setAccount, toOAuthError, type OidcContext } from './oidc.ts';
import { issueUnder } from './sessions.ts';

/** `resource` (RFC 8707): the default audience when absent; another one only if the client is allowed it. */
export const PASSWORD_GRANT_PARAMS = ['username', 'password', 'scope', 'resource'];

export type PasswordGrantDeps = {
  audience: string;
  events: SecurityEvents;
  /** The guarded, audited password check (PasswordLogin.attempt). */
  login(source: LoginSource, username: string, password: string): Promise<Account | null>;
  /** The account as it is now (null: gone or not active), for the re-check after the grant is saved. */
  findAccount(id: string): Promise<Account | null>;
  resourceServerInfo(ctx: OidcContext, resource: string, client: unknown): Promise<ResourceServerInfo>;
};

export function passwordGrant(provider: Provider, deps: PasswordGrantDeps) {
  return async function passwordGrantHandler(ctx: OidcContext): Promise<void> {
    const client = clientOf(ctx)!;
    const username = paramOf(ctx, 'username');
    const password = paramOf(ctx, 'password');
    if (!username) throw new errors.InvalidRequest("missing required parameter 'username'");
    if (!password) throw new errors.InvalidRequest("missing required parameter 'password'");
    const resource = paramOf(ctx, 'resource') ?? deps.audience;
    const raw = rawClientOf(ctx);
    // Before the password is checked: a client not allowed the resource learns nothing.
    const resourceServerInfo = await deps.resourceServerInfo(ctx, resource, raw);

    const allowed = new Set((client.scope ?? '').split(' ').filter(Boolean));
    const requestedScope = paramOf(ctx, 'scope');
    const requested = requestedScope ? requestedScope.split(' ').filter(Boolean) : [...allowed];
    const denied = requested.filter((s) => !allowed.has(s));
    if (denied.length) throw new errors.InvalidScope('requested scope is not allowed', denied.join(' '));
    const scope = requested.join(' ');

    let account: Account | null;
    try {
      const ip = endUserIp({ header: (name) => ctx.get(name), ip: ctx.ip }, client, deps.events);
      account = await deps.login({ clientId: client.clientId, ip, requestId: requestIdOf(ctx) }, username, password);
    } catch (err) {
      throw toOAuthError(err);
    }
    // One message for every failure: unknown user, wrong password, inactive, throttled.
    if (!account) throw new errors.InvalidGrant('invalid credentials');
    setAccount(ctx, account);

    issueUnder(ctx, { generation: account.generation, clientEpoch: client.sessionEpoch ?? '' });
    const grant = new provider.Grant({ accountId: account.accountId, clientId: client.clientId });
    grant.addResourceScope(resource, scope);
    const grantId = await grant.save();

    const resourceServer = new provider.ResourceServer(resource, resourceServerInfo);

    // The refresh token is recorded before any access token leaves: if Redis
    // cannot store it, the request fails and nothing is issued.
    let refreshToken: string | undefined;
    if (client.grantTypeAllowed('refresh_token')) {
      const rt = new provider.RefreshToken({
        accountId: account.accountId,
        client: raw,
        grantId,
        gty: 'password',
        resource,
        rotations: 0,
        scope,
      });
      refreshToken = await rt.save();
    }

    // A revocation that committed after the password was checked wins.
    let now: Account | null;
    try {
      now = await deps.findAccount(account.accountId);
    } catch (err) {
      throw toOAuthError(err);
    }
    if (!now || now.generation !== account.generation) {
      await grant.destroy().catch(() => undefined); // clean-up; the generation already killed it
      throw new errors.InvalidGrant('invalid credentials');
    }

    const at = new provider.AccessToken({ accountId: account.accountId, client: raw, grantId, gty: 'password', scope });
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
