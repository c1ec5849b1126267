// The second factor's routes: a user's own enrollment on the public port
// (Bearer access token, or the mfa_token of a login that must enroll first),
// and an admin's reset and per-user policy on the admin port. See README
// "Second factor" and src/accounts/mfa.ts.
import { z } from 'zod';
import type { SecondFactor } from '../accounts/mfa.ts';
import { route } from '../http/route.ts';

const code = z.string().regex(/^\d{6}$/, 'six digits');
const userId = z.object({ id: z.string() });
const selfTags = ['self-service'];
const servers = [{ url: '/', description: 'the public port (PORT), not the admin port' }];

export function mfaSelfServiceRoutes(mfa: SecondFactor) {
  return [
    route({
      method: 'get',
      path: '/account/mfa',
      operationId: 'mfaStatus',
      summary: "One's own second factor: enrolled, pending, required, recovery codes left",
      tags: selfTags,
      servers,
      auth: 'user',
      response: {
        status: 200,
        description: 'Status',
        schema: z.object({ enrolled: z.boolean(), pending: z.boolean(), required: z.boolean(), recovery_codes_left: z.number().int() }),
      },
      handle: ({ caller }) => mfa.status(caller!.sub),
    }),
    route({
      method: 'post',
      path: '/account/mfa/totp',
      operationId: 'startTotpEnrollment',
      summary: 'Start a TOTP enrollment: the secret and its otpauth:// URI, shown once',
      description:
        'Bearer: an access token, or the mfa_token of a login answered mfa_required for an account that must enroll. Restarting replaces a pending (unconfirmed) enrollment; a confirmed one must be disabled first (409).',
      tags: selfTags,
      servers,
      auth: 'enroll',
      response: { status: 201, description: 'Pending until confirmed', schema: z.object({ secret: z.string(), otpauth_uri: z.string() }) },
      errors: [409],
      handle: ({ caller }) => mfa.start(caller!.sub),
    }),
    route({
      method: 'post',
      path: '/account/mfa/totp/confirm',
      operationId: 'confirmTotpEnrollment',
      summary: 'Confirm the enrollment with a current code: 10 single-use recovery codes, shown once',
      tags: selfTags,
      servers,
      auth: 'enroll',
      body: z.strictObject({ code }),
      response: { status: 200, description: 'Enrolled', schema: z.object({ recovery_codes: z.array(z.string()) }) },
      errors: [403, 409],
      handle: ({ caller, body, meta }) => mfa.confirm(caller!.sub, body.code, { ...meta, actor: caller!.sub }),
    }),
    route({
      method: 'post',
      path: '/account/mfa/disable',
      operationId: 'disableMfa',
      summary: 'Remove the second factor: the current password and a current code (or a recovery code)',
      tags: selfTags,
      servers,
      auth: 'user',
      body: z.union([
        z.strictObject({ password: z.string().min(1), code }),
        z.strictObject({ password: z.string().min(1), recovery_code: z.string().min(1).max(64) }),
      ]),
      response: { status: 204, description: 'Disabled' },
      // 403 wrong or throttled alike; 429 too many failures from the source (the login guard).
      errors: [403, 429],
      handle: ({ caller, body, meta }) =>
        mfa.disable(caller!.sub, body.password, 'code' in body ? { otp: body.code } : { recoveryCode: body.recovery_code }, meta),
    }),
  ];
}

export function mfaAdminRoutes(mfa: SecondFactor) {
  const tags = ['users'];
  return [
    route({
      method: 'post',
      path: '/admin/users/{id}/mfa/reset',
      operationId: 'resetUserMfa',
      summary: "Remove the user's second factor and end every session of the user (audited as mfa.reset)",
      tags,
      auth: 'admin',
      params: userId,
      response: { status: 204, description: 'Reset' },
      errors: [404],
      handle: ({ params, meta }) => mfa.reset(params.id, meta),
    }),
    route({
      method: 'put',
      path: '/admin/users/{id}/mfa-required',
      operationId: 'setUserMfaRequired',
      summary: 'Require a second factor of this user (besides MFA_REQUIRED_ROLES), or stop requiring it',
      tags,
      auth: 'admin',
      params: userId,
      body: z.strictObject({ required: z.boolean() }),
      response: { status: 200, description: 'Set', schema: z.object({ mfa_required: z.boolean() }) },
      errors: [404],
      handle: ({ params, body, meta }) => mfa.setRequired(params.id, body.required, meta),
    }),
  ];
}
