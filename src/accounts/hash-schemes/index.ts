// Every scheme a stored password hash may use. argon2 is what this service
// writes; the others only arrive by import. To support another legacy
// format, add its module and one entry here.
import { argon2Scheme } from './argon2.ts';
import { bcryptScheme } from './bcrypt.ts';
import { ldapScheme } from './ldap.ts';
import { pbkdf2Scheme } from './pbkdf2.ts';
import { firebaseScryptScheme, scryptScheme } from './scrypt.ts';
import { shaCryptScheme } from './sha-crypt.ts';
import type { HashScheme } from './scheme.ts';

export type { Candidate, HashScheme } from './scheme.ts';

// pbkdf2 last: it also recognizes ASP.NET Core's bare base64 blobs.
export const SCHEMES: readonly HashScheme[] = [argon2Scheme, bcryptScheme, scryptScheme, firebaseScryptScheme, shaCryptScheme, ldapScheme, pbkdf2Scheme];

/** The scheme of a stored hash, or undefined for a string no scheme recognizes. */
export function schemeOf(hash: string): HashScheme | undefined {
  return SCHEMES.find((s) => s.recognizes(hash));
}

/** Import check: null for a usable hash within its scheme's cost bounds, else the reason. */
export function refuseImportedHash(hash: string): string | null {
  const scheme = schemeOf(hash);
  if (!scheme) return `not a hash of a supported scheme (${SCHEMES.map((s) => s.name).join(', ')})`;
  return scheme.refuses(hash);
}
