// bcrypt ($2a$, $2b$, $2y$) from older systems, verified by the native
// OpenBSD implementation (`bcrypt`, a prebuilt N-API binary) in libuv's
// thread pool: the event loop never runs the Blowfish rounds.
//
// bcrypt reads only the first 72 bytes of the password's UTF-8 encoding; the
// legacy system that wrote the hash saw only those. So the first 72 bytes are
// verified, byte for byte (even when the cut splits a character), and the
// login that succeeds then stores argon2id of the FULL password presented
// (src/accounts/users.ts), which from then on counts every byte.
import bcrypt from 'bcrypt';
import type { HashScheme } from './scheme.ts';

const BCRYPT = /^\$2([aby])\$(\d{2})\$[./A-Za-z0-9]{53}$/;

/** What bcrypt ever reads of a password. */
export const BCRYPT_MAX_BYTES = 72;
/** Cost (log2 of the rounds) accepted on import: 2^14 rounds take about a second here, the same order as the argon2 bound. */
export const BCRYPT_COST = Object.freeze({ min: 4, max: 14 });

export const bcryptScheme: HashScheme = {
  name: 'bcrypt',
  recognizes: (hash) => BCRYPT.test(hash),
  refuses(hash) {
    const m = BCRYPT.exec(hash);
    if (!m) return 'not a bcrypt hash ($2a$/$2b$/$2y$, cost, 53 characters of salt and digest)';
    const cost = Number(m[2]);
    if (cost < BCRYPT_COST.min || cost > BCRYPT_COST.max) return `bcrypt cost ${cost} is outside ${BCRYPT_COST.min}-${BCRYPT_COST.max}`;
    return null;
  },
  async verify(hash, { typed, normalized }) {
    // $2y$ (PHP's crypt_blowfish) is the same algorithm as $2b$, which the native code reads.
    const stored = hash.replace(/^\$2y\$/, '$2b$');
    // The legacy system may have hashed the password as typed, not in NFC: try both spellings.
    const prefixes = new Map<string, Buffer>();
    for (const text of [normalized, typed]) {
      const bytes = Buffer.from(text, 'utf8').subarray(0, BCRYPT_MAX_BYTES);
      prefixes.set(bytes.toString('hex'), bytes);
    }
    for (const bytes of prefixes.values()) {
      try {
        if (await bcrypt.compare(bytes, stored)) return true;
      } catch {
        return false;
      }
    }
    return false;
  },
};
