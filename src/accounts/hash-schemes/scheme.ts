// What a password-hash scheme provides. This service writes argon2id only;
// hashes of other schemes arrive by import from older systems, are verified
// as those systems did, and are replaced by argon2id at the user's next
// successful login. A new legacy format is one module implementing this type
// plus one line in ./index.ts.
import { timingSafeEqual } from 'node:crypto';


/** A password as the user presented it, and its NFC form (what this service hashes). */
export type Candidate = Readonly<{ typed: string; normalized: string }>;

export type HashScheme = Readonly<{
  name: string;
  /** Cheap syntactic test: is this stored string a hash of this scheme? */
  recognizes(hash: string): boolean;
  /**
   * Import check: null when the hash is well-formed and its cost is within
   * the scheme's documented bounds, else why not (shown to the admin). Bounded
   * cost keeps every verification short, so no imported hash can hold a
   * hashing slot for long.
   */
  refuses(hash: string): string | null;
  /** Verifies off the event loop (libuv's thread pool). Never throws: a hash it cannot use is `false`. */
  verify(hash: string, password: Candidate): Promise<boolean>;
}>;

/**
 * The password's UTF-8 bytes as the legacy system may have hashed them: in
 * NFC (what this service hashes) and as typed, when the two differ.
 */
export function spellings({ typed, normalized }: Candidate): Buffer[] {
  const nfc = Buffer.from(normalized, 'utf8');
  return typed === normalized ? [nfc] : [nfc, Buffer.from(typed, 'utf8')];
}

/** Standard or URL-safe base64, or passlib's "ab64" ('.' for '+'), padded or not; null when it is not base64. */
export function decodeBase64(text: string): Buffer | null {
  if (!/^[A-Za-z0-9+/._-]*={0,2}$/.test(text)) return null;
  return Buffer.from(text.replace(/\./g, '+'), 'base64');
}

/** Constant-time equality of a derived key and the stored one (lengths differ: false). */
export function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** True when any spelling of the password derives the stored bytes; a derivation that throws is false. */
export async function anySpelling(password: Candidate, derive: (bytes: Buffer) => Promise<Buffer>, stored: Buffer): Promise<boolean> {
  for (const bytes of spellings(password)) {
    try {
      if (sameBytes(await derive(bytes), stored)) return true;
    } catch {
      return false;
    }
  }
  return false;
}
