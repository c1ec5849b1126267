// The scope a token request is granted, the same rule for every grant
// (RFC 6749 §3.3): no `scope` → every scope the client is allowed; any scope
// the client is not allowed (unknown ones included) → invalid_scope.
import { errors } from 'oidc-provider';

/** The granted scope string, or throws invalid_scope naming the refused scopes. Pure. */
export function grantedScope(clientScope: string | undefined, requested: string | undefined): string {
  const allowed = new Set((clientScope ?? '').split(' ').filter(Boolean));
  const wanted = requested ? [...new Set(requested.split(' ').filter(Boolean))] : [...allowed];
  const denied = wanted.filter((s) => !allowed.has(s));
  if (denied.length) throw new errors.InvalidScope('requested scope is not allowed', denied.join(' '));
  return wanted.join(' ');
}
