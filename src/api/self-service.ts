// Self-service account endpoints, mounted on the PUBLIC port (not the admin
// port): registration, password reset by email, password change. JSON only.
import { z } from 'zod';
import type { Accounts } from '../accounts/lifecycle.ts';
import type { Registration } from '../accounts/registration.ts';
import type { PasswordResets } from '../accounts/reset.ts';
import { route } from '../http/route.ts';

// No role, no status: whatever else is sent is refused (strict).
const registerBody = z.strictObject({ email: z.email().max(320), password: z.string() }).meta({ id: 'Registration' });
const forgotBody = z.strictObject({ email: z.string().max(320) });
const resetBody = z.strictObject({ token: z.string().min(1).max(200), password: z.string() });
const changeBody = z.strictObject({ current_password: z.string().min(1), new_password: z.string() });

// One answer for a new address and for one that has an account (and for any address at /password/forgot).
const accepted = z.object({ status: z.literal('accepted') }).meta({ id: 'Accepted' });
const ACCEPTED = { status: 'accepted' } as const;

const tags = ['self-service'];
const servers = [{ url: '/', description: 'the public port (PORT), not the admin port' }];

export function selfServiceRoutes(accounts: Accounts, registration: Registration, resets: PasswordResets) {
  return [
    route({
      method: 'post',
      path: '/register',
      operationId: 'register',
      summary: 'Self-registration (REGISTRATION_MODE open or approval); the same answer whether or not the address already has an account',
      description:
        'A new address gets an account (active in open mode, pending approval in approval mode) and a mail saying so; an address that already has one gets a mail to its owner instead, and nothing changes. Limited per IP and per address (429).',
      tags,
      servers,
      auth: 'public',
      body: registerBody,
      response: { status: 202, description: 'Accepted: the outcome is mailed to the address', schema: accepted },
      errors: [403, 429],
      handle: async ({ body, meta }) => {
        await registration.register(body, meta);
        return ACCEPTED;
      },
    }),
    route({
      method: 'post',
      path: '/password/forgot',
      operationId: 'requestPasswordReset',
      summary: 'Email a reset link; the same answer, in the same time, whether or not the account exists',
      description: 'The link replaces any earlier one of the account. Limited per IP and per address (429).',
      tags,
      servers,
      auth: 'public',
      body: forgotBody,
      response: { status: 202, description: 'Accepted', schema: accepted },
      errors: [429],
      handle: async ({ body, meta }) => {
        await resets.request(body.email, meta);
        return ACCEPTED;
      },
    }),
    route({
      method: 'post',
      path: '/password/reset',
      operationId: 'completePasswordReset',
      summary: 'Set a new password with the emailed token (single use); revokes every grant',
      tags,
      servers,
      auth: 'public',
      body: resetBody,
      response: { status: 204, description: 'Password set' },
      handle: ({ body, meta }) => resets.complete(body.token, body.password, meta),
    }),
    route({
      method: 'post',
      path: '/account/password',
      operationId: 'changePassword',
      summary: "Change one's own password (Bearer access token + current password); revokes refresh tokens",
      tags,
      servers,
      auth: 'user',
      body: changeBody,
      response: { status: 204, description: 'Password changed' },
      // 403 for a wrong or throttled current password alike; 429 too many failures from the source (the login guard's limits).
      errors: [403, 429],
      handle: ({ body, caller, meta }) => accounts.changePassword(caller!.sub, body.current_password, body.new_password, meta),
    }),
  ];
}
