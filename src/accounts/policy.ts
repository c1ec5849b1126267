// Password policy (OWASP ASVS 5.0 V6, NIST 800-63B): a minimum length counted
// in Unicode code points after NFC, a byte cap against hashing DoS (never a
// silent truncation), a list of the most common passwords, and optional
// composition rules (off by default: NIST advises against them). Checked when a
// password is set (create, register, change, reset), never at login, so
// existing users keep logging in after the policy tightens.
import { dictionary } from '@zxcvbn-ts/language-common';
import { ServiceError } from '../errors.ts';
import { MAX_PASSWORD_BYTES, PasswordHasher } from './passwords.ts';

export type Composition = 'upper' | 'lower' | 'digit' | 'special';
export type PasswordPolicy = Readonly<{ minLength: number; composition: readonly Composition[] }>;

/** The shipped list of common passwords (zxcvbn-ts, ~49,000 entries, lower case). */
let common: Set<string> | undefined;
export function commonPasswords(): ReadonlySet<string> {
  return (common ??= new Set(dictionary['passwords-common'].map((p) => p.toLowerCase())));
}

const CLASSES: Record<Composition, [RegExp, string]> = {
  upper: [/\p{Lu}/u, 'an upper-case letter'],
  lower: [/\p{Ll}/u, 'a lower-case letter'],
  digit: [/\p{Nd}/u, 'a digit'],
  special: [/[^\p{L}\p{Nd}]/u, 'a character that is not a letter or digit'],
};

const fail = (reason: string, message: string) =>
  new ServiceError('validation_failed', `password ${message} (${reason})`, { field: 'password' });

/** Throws a validation_failed ServiceError (field `password`) naming the broken rule. */
export function checkPassword(policy: PasswordPolicy, password: unknown, context: { email?: string } = {}): string {
  if (typeof password !== 'string' || password === '') throw fail('password_required', 'is required');
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) {
    throw fail('password_too_long', `must be at most ${MAX_PASSWORD_BYTES} bytes`);
  }
  const normalized = PasswordHasher.normalize(password);
  if ([...normalized].length < policy.minLength) {
    throw fail('password_too_short', `must be at least ${policy.minLength} characters`);
  }
  const lower = normalized.toLowerCase();
  if (commonPasswords().has(lower)) throw fail('password_common', 'is one of the most common passwords');
  const email = context.email?.toLowerCase();
  if (email && (lower === email || lower === email.split('@')[0])) {
    throw fail('password_is_email', 'must not be the email address');
  }
  for (const rule of policy.composition) {
    const [re, what] = CLASSES[rule];
    if (!re.test(normalized)) throw fail(`password_needs_${rule}`, `must contain ${what}`);
  }
  return password;
}
