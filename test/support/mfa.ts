// Helpers for the second-factor tests. TOTP codes come from oathtool (GNU
// oath-toolkit), an implementation independent of the service's (otpauth).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { call } from './admin.ts';
import { basic, postForm, type TestService } from './service.ts';
import type { TestClient } from './security.ts';

const run = promisify(execFile);

export const MFA_OTP = 'http://auth0.com/oauth/grant-type/mfa-otp';
export const MFA_RECOVERY = 'http://auth0.com/oauth/grant-type/mfa-recovery-code';

/** The code for the step `stepsAhead` steps from now (±1 is within the accepted drift). */
export async function totp(secret: string, stepsAhead = 0): Promise<string> {
  const at = Math.floor(Date.now() / 1000) + stepsAhead * 30;
  const { stdout } = await run('oathtool', ['--totp', '-b', `--now=@${at}`, secret]);
  return stdout.trim();
}

/** A code that is wrong now (and for the drift either side): the current one with its last digit changed, checked against ±1. */
export async function wrongCode(secret: string): Promise<string> {
  const valid = new Set(await Promise.all([-1, 0, 1].map((d) => totp(secret, d))));
  for (let i = 0; ; i++) {
    const candidate = String((Number(await totp(secret)) + 1 + i) % 1_000_000).padStart(6, '0');
    if (!valid.has(candidate)) return candidate;
  }
}

/**
 * Enrolls a TOTP factor for the holder of `bearer` (an access token or an
 * enrollment mfa_token), confirmed with the code of `step` (-1 leaves the
 * current and the next step's codes for the test).
 */
export async function enroll(svc: TestService, bearer: string, step = 0): Promise<{ secret: string; uri: string; recoveryCodes: string[] }> {
  const started = await call(svc.publicUrl, 'POST', '/account/mfa/totp', { token: bearer });
  if (started.status !== 201) throw new Error(`enrollment start: ${started.status} ${JSON.stringify(started.body)}`);
  const secret = started.body.secret as string;
  const confirmed = await call(svc.publicUrl, 'POST', '/account/mfa/totp/confirm', { token: bearer, body: { code: await totp(secret, step) } });
  if (confirmed.status !== 200) throw new Error(`enrollment confirm: ${confirmed.status} ${JSON.stringify(confirmed.body)}`);
  return { secret, uri: started.body.otpauth_uri, recoveryCodes: confirmed.body.recovery_codes };
}

export function tokenRequest(svc: TestService, client: TestClient, form: Record<string, string>, headers: Record<string, string> = {}) {
  return postForm(`${svc.config.issuer}/token`, form, { authorization: basic(client.id, client.secret), ...headers });
}

export const otpGrant = (svc: TestService, client: TestClient, mfaToken: string, otp: string, headers: Record<string, string> = {}) =>
  tokenRequest(svc, client, { grant_type: MFA_OTP, mfa_token: mfaToken, otp }, headers);

export const recoveryGrant = (svc: TestService, client: TestClient, mfaToken: string, code: string, headers: Record<string, string> = {}) =>
  tokenRequest(svc, client, { grant_type: MFA_RECOVERY, mfa_token: mfaToken, recovery_code: code }, headers);
