// SHA-crypt ($5$ SHA-256, $6$ SHA-512), Ulrich Drepper's "Unix crypt using
// SHA-256 and SHA-512" (glibc, libxcrypt, /etc/shadow). Pure computation; it
// is run in a worker thread (./sha-crypt.ts), never on the event loop.
import { createHash } from 'node:crypto';

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export const SHA_CRYPT = /^\$([56])\$(?:rounds=(\d{1,9})\$)?([^$:\n]{0,16})\$([./0-9A-Za-z]{43}|[./0-9A-Za-z]{86})$/;
export const ROUNDS_DEFAULT = 5000;

// The order in which the final digest's bytes are encoded, three at a time.
const ORDER: Record<'5' | '6', number[][]> = {
  '5': [[0, 10, 20], [21, 1, 11], [12, 22, 2], [3, 13, 23], [24, 4, 14], [15, 25, 5], [6, 16, 26], [27, 7, 17], [18, 28, 8], [9, 19, 29]],
  '6': [
    [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48], [28, 49, 7], [50, 8, 29], [9, 30, 51], [31, 52, 10],
    [53, 11, 32], [12, 33, 54], [34, 55, 13], [56, 14, 35], [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41],
  ],
};

function encode24(b2: number, b1: number, b0: number, n: number): string {
  let w = (b2 << 16) | (b1 << 8) | b0;
  let out = '';
  for (let i = 0; i < n; i++, w >>= 6) out += ITOA64[w & 0x3f];
  return out;
}

/** Repeats `block` to `length` bytes. */
function stretch(block: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += block.length) block.copy(out, i, 0, Math.min(block.length, length - i));
  return out;
}

/** The full crypt string of `password` under `setting` ($5$/$6$, optional rounds=, salt), as glibc computes it. */
export function shaCrypt(password: Buffer, id: '5' | '6', salt: string, roundsField: string | undefined): string {
  const algorithm = id === '5' ? 'sha256' : 'sha512';
  const H = (...parts: Buffer[]) => {
    const h = createHash(algorithm);
    for (const p of parts) h.update(p);
    return h.digest();
  };
  const rounds = roundsField === undefined ? ROUNDS_DEFAULT : Math.min(999_999_999, Math.max(1000, Number(roundsField)));
  const S = Buffer.from(salt, 'utf8');
  const P = password;
  const B = H(P, S, P);
  const a = createHash(algorithm).update(P).update(S).update(stretch(B, P.length));
  for (let n = P.length; n > 0; n >>= 1) a.update(n & 1 ? B : P);
  const A = a.digest();
  const dp = createHash(algorithm);
  for (let i = 0; i < P.length; i++) dp.update(P);
  const Pp = stretch(dp.digest(), P.length);
  const ds = createHash(algorithm);
  for (let i = 0; i < 16 + A[0]!; i++) ds.update(S);
  const Sp = stretch(ds.digest(), S.length);
  let C = A;
  for (let i = 0; i < rounds; i++) {
    const c = createHash(algorithm);
    c.update(i & 1 ? Pp : C);
    if (i % 3) c.update(Sp);
    if (i % 7) c.update(Pp);
    c.update(i & 1 ? C : Pp);
    C = c.digest();
  }
  let out = ORDER[id].map(([x, y, z]) => encode24(C[x!]!, C[y!]!, C[z!]!, 4)).join('');
  out += id === '5' ? encode24(0, C[31]!, C[30]!, 3) : encode24(0, 0, C[63]!, 2);
  return `$${id}$${roundsField === undefined ? '' : `rounds=${rounds}$`}${salt}$${out}`;
}
