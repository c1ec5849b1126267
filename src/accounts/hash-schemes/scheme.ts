// What a password-hash scheme provides. This service writes argon2id only;
// hashes of other schemes arrive by import from older systems, are verified
// as those systems did, and are replaced by argon2id at the user's next
// successful login. A new legacy format is one module implementing this type
// plus one line in ./index.ts.

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
