// The grace window (REFRESH_REUSE_GRACE_SECONDS) for a refresh response lost
// on the way to the client: within the window, the immediate predecessor,
// presented again by its client, gets the SAME successor refresh token back
// (with a freshly signed access token), never a second one.
//
// The rotation script stores the successor beside the family, AES-256-GCM
// sealed under a key derived (HKDF) from the old token itself and bound to
// the client id, so Redis alone can open nothing. A replay runs the whole
// refresh flow (grant, account and client checks included); only the last
// step differs: instead of storing the successor oidc-provider just built,
// the adapter opens the stored one and this middleware answers with it.
import { hkdfSync } from 'node:crypto';
import { seal, unseal } from '../lib/crypto.ts';
import type { OidcContext } from './oidc.ts';

function keyFor(presented: string, clientId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', presented, 'identity refresh grace', clientId, 32));
}

/** The successor, sealed under the token it replaces. */
export function sealSuccessor(presented: string, clientId: string, successor: string): string {
  return seal(keyFor(presented, clientId), successor, clientId);
}

/** Opens what sealSuccessor stored; throws SealError for another token or client. */
export function openSuccessor(presented: string, clientId: string, sealed: string): string {
  return unseal(keyFor(presented, clientId), sealed, clientId);
}

const substitutes = new WeakMap<object, string>();

/** The adapter, on a grace replay: answer with `successor` instead of the token oidc-provider built. */
export function answerWithSuccessor(ctx: OidcContext, successor: string): void {
  substitutes.set(ctx, successor);
}

/** Provider middleware: puts the remembered successor into a grace replay's answer. */
export async function refreshGrace(ctx: OidcContext, next: () => Promise<void>): Promise<void> {
  await next();
  const successor = substitutes.get(ctx);
  const body = ctx.body as Record<string, unknown> | undefined;
  if (successor && ctx.status === 200 && body && typeof body.refresh_token === 'string') body.refresh_token = successor;
}
