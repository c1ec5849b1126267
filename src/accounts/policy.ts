// Password policy (OWASP ASVS 5.0 V6, NIST 800-63B): only characters the token
// endpoint accepts, a minimum length counted in Unicode code points after NFC,
// a byte cap against hashing DoS (never a silent truncation), a list of the
// most common passwords, and optional composition rules (off by default: NIST
// advises against them). Checked wherever a password is set (admin and CLI
// creation, bootstrap, registration, change, reset), never at login, so
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

/**
 * Characters no password (and no form parameter of the token endpoint, see
 * src/http/input-hardening.ts) may hold: C0 controls except TAB (so NUL, CR
 * and LF too), DEL and the C1 controls.
 */
export const CONTROL_CHARACTERS = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/;

/**
 * The character rule for a password, the one `/token` applies to what it
 * receives. Its form body must be valid UTF-8, and UTF-8 cannot carry a lone
 * (unpaired) UTF-16 surrogate, so a password set through JSON (where `\ud800`
 * is a legal escape) must be well-formed Unicode too: every high surrogate
 * followed by a low one and no low surrogate alone (String#isWellFormed).
 * Otherwise the account could never log in. Null when the password is fine.
 */
export function forbiddenCharacter(password: string): 'control character' | 'lone surrogate' | null {
  if (!password.isWellFormed()) return 'lone surrogate';
  return CONTROL_CHARACTERS.test(password) ? 'control character' : null;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A password read as bytes (the CLI's standard input, the bootstrap file):
 * strict UTF-8, as /token reads its form. A lenient decoder would turn bytes
 * that /token refuses (a lone surrogate's ED A0 80, say) into U+FFFD and set a
 * password nobody can type. The rest of the rule is checkPassword's.
 */
export function passwordFromBytes(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw fail('password_invalid_characters', 'must be valid UTF-8');
  }
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
  const bad = forbiddenCharacter(password);
  if (bad) throw fail('password_invalid_characters', `must not contain a ${bad} (NUL, line breaks, other control characters, or half of a surrogate pair)`);
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
