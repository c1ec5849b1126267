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
import { senderKeyOf } from './dpop-binding.ts';
import { clientOf, paramOf, rawClientOf, requestIdOf, toOAuthError, type OidcContext } from './oidc.ts';
import { issueLogin } from './issue-login.ts';
import { mfaRequired, type MfaGrantDeps } from './mfa-grant.ts';
import { grantedScope } from './scopes.ts';

/** `resource` (RFC 8707): the default audience when absent; another one only if the client is allowed it. */
export const PASSWORD_GRANT_PARAMS = ['username', 'password', 'scope', 'resource'];

export type PasswordGrantDeps = MfaGrantDeps & {
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

    const scope = grantedScope(client.scope, paramOf(ctx, 'scope'));
    // DPoP (RFC 9449): the proof is checked (and its jti recorded) before the
    // password, so a bad proof spends no attempt; the mfa_token and the
    // access token are bound to its key.
    const jkt = await senderKeyOf(ctx);

    let account: Account | null;
    try {
      const ip = endUserIp({ header: (name) => ctx.get(name), ip: ctx.ip }, client, deps.events);
      account = await deps.login({ clientId: client.clientId, ip, requestId: requestIdOf(ctx) }, username, password);
    } catch (err) {
      throw toOAuthError(err);
    }
    // One message for every failure: unknown user, wrong password, inactive, throttled.
    if (!account) throw new errors.InvalidGrant('invalid credentials');

    // A second factor to present, or to enroll first (src/tokens/mfa-grant.ts).
    if (await mfaRequired(ctx, deps, account, { resource, scope, ...(jkt ? { dpopJkt: jkt } : {}) })) return;

    await issueLogin(provider, ctx, deps, account, { resource, scope, resourceServerInfo, gty: 'password', jkt });
  };
}
