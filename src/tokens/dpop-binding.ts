// DPoP (RFC 9449) for the grants this service registers itself: custom
// grants are handed only the context, not oidc-provider's grant helpers, so
// this does what its built-in grants do (lib/helpers/grant_common.js
// applyDpopBinding): validate the proof (nothing when the feature is off or
// no DPoP header was sent), refuse a replayed proof, bind the access token to
// the key's thumbprint (`cnf.jkt`).
import Provider, { errors } from 'oidc-provider';
import { clientOf, type OidcContext } from './oidc.ts';

type Proof = { thumbprint: string; jti: string; iat: number };
type ValidateDpop = (provider: Provider, ctx: OidcContext) => Promise<Proof | undefined>;
type CheckReplay = (provider: Provider, ctx: OidcContext, proof: Proof, clientId: string, error: unknown) => Promise<void>;

const helpers = (await import('oidc-provider/lib/helpers/validate_dpop.js' as string)) as { default: ValidateDpop; checkDpopReplay: CheckReplay };

/** The DPoP proof of this request (validated), or undefined. */
export function dpopProofOf(ctx: OidcContext): Promise<Proof | undefined> {
  return helpers.default(ctx.oidc.provider, ctx);
}

/**
 * The thumbprint of the request's DPoP key (proof validated, replay refused),
 * or undefined when no proof was sent (or DPoP is off). Call it before
 * anything is saved: a bad proof must not leave a half-made login behind.
 */
export async function senderKeyOf(ctx: OidcContext): Promise<string | undefined> {
  const proof = await dpopProofOf(ctx);
  if (!proof) {
    // RFC 9449 §5.2: a client registered dpop_bound_access_tokens must send a proof.
    if (clientOf(ctx)?.dpopBound) throw new errors.InvalidGrant('DPoP proof JWT not provided');
    return undefined;
  }
  await helpers.checkDpopReplay(ctx.oidc.provider, ctx, proof, ctx.oidc.client!.clientId, errors.InvalidGrant);
  return proof.thumbprint;
}
