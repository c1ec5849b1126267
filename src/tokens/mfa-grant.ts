// The second factor at the token endpoint, in the shape of Auth0's MFA API so
// that gateway code written for it ports with the URLs changed:
//
//   1. grant_type=password, right password, and the account has a second
//      factor (or must have one): 400 {"error":"mfa_required",
//      "error_description", "mfa_token"}. Only ever after a correct
//      password, so it reveals nothing a correct password does not; every
//      failure stays the byte-identical invalid_grant.
//   2. grant_type=http://auth0.com/oauth/grant-type/mfa-otp with mfa_token +
//      otp, or .../mfa-recovery-code with mfa_token + recovery_code: the usual
//      tokens (refresh token included, DPoP-bound when a proof is sent).
//
// An account that must have a second factor but has none gets an mfa_token
// that only enrolls one (the /account/mfa routes accept it as a Bearer
// token); then the OTP grant with that mfa_token and a later code finishes
// the login. No access token before the second factor.
//
// The mfa_token: src/tokens/mfa-tickets.ts (≤ 5 min, bound to client and
// account, single use, by hash in Redis). The code check: src/accounts/mfa.ts
// behind the login guard.
import { errors, type Provider, type ResourceServer as ResourceServerInfo } from 'oidc-provider';
import type { LoginSource } from '../accounts/login.ts';
import type { MfaState, Proof } from '../accounts/mfa.ts';
import type { Account } from '../accounts/users.ts';
import { endUserIp } from '../security/client-ip.ts';
import type { SecurityEvents } from '../security/events.ts';
import { senderKeyOf } from './dpop-binding.ts';
import { issueLogin } from './issue-login.ts';
import type { MfaTickets, Ticket } from './mfa-tickets.ts';
import { atBoundary, clientOf, paramOf, rawClientOf, requestIdOf, type OidcContext } from './oidc.ts';

/** Auth0's grant type identifiers (advertised in discovery's grant_types_supported). */
export const MFA_OTP_GRANT = 'http://auth0.com/oauth/grant-type/mfa-otp';
export const MFA_RECOVERY_CODE_GRANT = 'http://auth0.com/oauth/grant-type/mfa-recovery-code';
export const MFA_GRANT_TYPES = [MFA_OTP_GRANT, MFA_RECOVERY_CODE_GRANT] as const;

export type MfaGrantDeps = {
  events: SecurityEvents;
  tickets: MfaTickets;
  mfaState(accountId: string): Promise<MfaState>;
  /** The guarded second-factor check (SecondFactor.checkAccount). */
  checkSecondFactor(source: LoginSource, accountId: string, proof: Proof): Promise<boolean>;
  findAccount(id: string): Promise<Account | null>;
  resourceServerInfo(ctx: OidcContext, resource: string, client: unknown): Promise<ResourceServerInfo>;
};

/** The request's login source (the end user's IP when a trusted gateway sends it). */
export function loginSourceOf(ctx: OidcContext, events: SecurityEvents): LoginSource {
  const client = clientOf(ctx)!;
  const ip = endUserIp({ header: (name) => ctx.get(name), ip: ctx.ip }, client, events);
  return { clientId: client.clientId, ip, requestId: requestIdOf(ctx) };
}

/** What a correct password leads to: nothing (no second factor), or what is still needed and a ticket for it. */
export async function secondStep(
  deps: Pick<MfaGrantDeps, 'mfaState' | 'tickets'>,
  kind: Ticket['kind'],
  account: Account,
  ticket: Omit<Ticket, 'kind' | 'accountId' | 'generation' | 'purpose'>,
  /** Whether an account that must enroll first gets a ticket (the mfa_token enrolls; an auth_session cannot). */
  enrollTicket = true,
): Promise<{ purpose: Ticket['purpose']; value: string | undefined } | undefined> {
  const state = await deps.mfaState(account.accountId);
  if (!state.enrolled && !state.required) return undefined;
  const purpose = state.enrolled ? 'challenge' : 'enroll';
  if (purpose === 'enroll' && !enrollTicket) return { purpose, value: undefined };
  const value = await deps.tickets.issue({ ...ticket, kind, accountId: account.accountId, generation: account.generation, purpose });
  return { purpose, value };
}

/** The password grant's step 1: true when it answered mfa_required. */
export async function mfaRequired(
  ctx: OidcContext,
  deps: MfaGrantDeps,
  account: Account,
  grant: { resource: string; scope: string; dpopJkt?: string },
): Promise<boolean> {
  const client = clientOf(ctx)!;
  const next = await atBoundary(() => secondStep(deps, 'mfa_token', account, { clientId: client.clientId, ...grant }));
  if (!next) return false;
  ctx.status = 400;
  ctx.body = {
    error: 'mfa_required',
    error_description:
      next.purpose === 'challenge'
        ? 'a second factor is required: send the mfa_token with an otp or a recovery_code'
        : 'a second factor is required and none is enrolled: enroll one with the mfa_token (POST /account/mfa/totp), then send an otp',
    mfa_token: next.value,
  };
  return true;
}

/**
 * A redeemed ticket, or why not: the ticket (unknown, expired, used, another
 * client's, bound to another DPoP key, out of attempts, revoked since) or the
 * code (wrong, used, throttled: one answer).
 */
export type Redeemed = { ok: true; account: Account; ticket: Ticket } | { ok: false; failed: 'ticket' | 'code' };

/**
 * Checks a ticket: the client's own, presented with the DPoP key it was
 * issued under (`jkt`: the request's key, from senderKeyOf, checked by the
 * caller before anything is spent), within its attempts, the second factor
 * right, no revocation since. The caller saves the login, then spends the
 * ticket (`spend`: single use; a store stall before it leaves the ticket for
 * the retry). Store errors throw.
 */
export async function redeem(
  ctx: OidcContext,
  deps: MfaGrantDeps,
  kind: Ticket['kind'],
  value: string,
  proof: Proof,
  jkt: string | undefined,
): Promise<Redeemed> {
  const client = clientOf(ctx)!;
  const ticket = await deps.tickets.find(value, kind);
  if (!ticket || ticket.clientId !== client.clientId) return { ok: false, failed: 'ticket' };
  // Bound to the key of the password step when it had one (draft-ietf-oauth-first-party-apps §9.6.1).
  if (ticket.dpopJkt && ticket.dpopJkt !== jkt) return { ok: false, failed: 'ticket' };
  // A revocation (password change, reset, admin revoke, MFA reset) since the
  // password step wins: checked before the code, so a dead ticket spends no
  // TOTP step and is never echoed back as if a right code could still help,
  // and again after it, for a revocation that lands during the check.
  const liveAccount = async () => {
    const account = await deps.findAccount(ticket.accountId);
    return !account || account.generation !== ticket.generation ? undefined : account;
  };
  if (!(await liveAccount())) return { ok: false, failed: 'ticket' };
  if ((await deps.tickets.attempt(value)) === 'exhausted') return { ok: false, failed: 'ticket' };
  if (!(await deps.checkSecondFactor(loginSourceOf(ctx, deps.events), ticket.accountId, proof))) return { ok: false, failed: 'code' };
  const account = await liveAccount();
  if (!account) return { ok: false, failed: 'ticket' };
  return { ok: true, account, ticket };
}

/** Spends a redeemed ticket once its login is saved; `refusal` when another request spent it first. */
export function spend(deps: Pick<MfaGrantDeps, 'tickets'>, value: string, refusal: () => Error): () => Promise<void> {
  return async () => {
    if (!(await deps.tickets.consume(value))) throw refusal();
  };
}

/** The OTP and recovery-code grants (registered in src/tokens/provider.ts). */
export function mfaGrant(provider: Provider, deps: MfaGrantDeps, grantType: (typeof MFA_GRANT_TYPES)[number]) {
  const codeParam = grantType === MFA_OTP_GRANT ? 'otp' : 'recovery_code';
  return async function mfaGrantHandler(ctx: OidcContext): Promise<void> {
    const value = paramOf(ctx, 'mfa_token');
    const code = paramOf(ctx, codeParam);
    if (!value) throw new errors.InvalidRequest("missing required parameter 'mfa_token'");
    if (!code) throw new errors.InvalidRequest(`missing required parameter '${codeParam}'`);
    const proof = codeParam === 'otp' ? { otp: code } : { recoveryCode: code };
    // DPoP first: a bad proof (or none from a dpop_bound_access_tokens client) spends neither the mfa_token nor the code.
    const jkt = await senderKeyOf(ctx);
    const redeemed = await atBoundary(() => redeem(ctx, deps, 'mfa_token', value, proof, jkt));
    // Wrong, already used and throttled are one answer.
    if (!redeemed.ok && redeemed.failed === 'code') throw new errors.InvalidGrant('the code is wrong or was already used');
    const spent = () => new errors.InvalidGrant('the mfa_token is invalid, expired or already used');
    if (!redeemed.ok) throw spent();
    const { account, ticket } = redeemed;
    const resource = ticket.resource ?? '';
    const resourceServerInfo = await deps.resourceServerInfo(ctx, resource, rawClientOf(ctx));
    const gty = codeParam === 'otp' ? 'mfa-otp' : 'mfa-recovery-code';
    await issueLogin(provider, ctx, deps, account, {
      resource,
      scope: ticket.scope,
      resourceServerInfo,
      gty,
      jkt,
      spend: spend(deps, value, spent),
    });
  };
}

export const MFA_GRANT_PARAMS = {
  [MFA_OTP_GRANT]: ['mfa_token', 'otp'],
  [MFA_RECOVERY_CODE_GRANT]: ['mfa_token', 'recovery_code'],
} as const;
