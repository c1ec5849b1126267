// The end of every login at the token endpoint (the password grant and the
// second-factor grants): a Grant under the account's session stamp, a
// refresh token when the client may refresh, the session re-check, then the
// access token. The same steps as oidc-provider's built-in grants
// (lib/actions/grants), which custom grants cannot call.
import { errors, type Provider, type ResourceServer as ResourceServerInfo } from 'oidc-provider';
import type { Account } from '../accounts/users.ts';
import { clientOf, rawClientOf, setAccount, toOAuthError, type OidcContext } from './oidc.ts';
import { issueUnder } from './sessions.ts';

export type LoginIssue = {
  resource: string;
  scope: string;
  resourceServerInfo: ResourceServerInfo;
  gty: string;
  /** The request's DPoP key (senderKeyOf), checked by the grant before it spent anything: the access token is bound to it. */
  jkt: string | undefined;
  /** The second-factor grants: spends their ticket once the login is saved, before it is answered (throws when it cannot). */
  spend?: () => Promise<void>;
};

/**
 * Records a login (a Grant under the account's session stamp, and a refresh
 * token when the client may refresh) and answers with the tokens, as the
 * built-in grants do. The password grant and the second-factor grants end here.
 */
export async function issueLogin(
  provider: Provider,
  ctx: OidcContext,
  deps: { findAccount(id: string): Promise<Account | null> },
  account: Account,
  { resource, scope, resourceServerInfo, gty, jkt, spend }: LoginIssue,
): Promise<void> {
  const client = clientOf(ctx)!;
  const raw = rawClientOf(ctx);
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
    const rt = new provider.RefreshToken({ accountId: account.accountId, client: raw, grantId, gty, resource, rotations: 0, scope });
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
  if (spend) {
    try {
      await spend();
    } catch (err) {
      await grant.destroy().catch(() => undefined); // clean-up of a login nobody will be told about
      throw toOAuthError(err);
    }
  }

  const at = new provider.AccessToken({ accountId: account.accountId, client: raw, grantId, gty, scope });
  at.resourceServer = resourceServer;
  if (jkt) at.setThumbprint('jkt', jkt);
  const accessToken = await at.save();

  ctx.body = {
    access_token: accessToken,
    // RFC 9449 §5: a DPoP-bound access token is of type DPoP.
    token_type: jkt ? 'DPoP' : 'Bearer',
    expires_in: at.expiration,
    ...(refreshToken ? { refresh_token: refreshToken } : {}),
    scope,
  };
}
