// scrypt, in two layouts:
//   PHC / passlib   $scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<key>   (base64, '.' may stand for '+')
//   Firebase        $firebase-scrypt$m=<mem_cost>,r=<rounds>$<salt>$<hash>$<salt separator>$<signer key>
// Firebase's "modified scrypt" derives a 32-byte key with scrypt(password,
// salt ‖ salt separator, N = 2^mem_cost, r = rounds, p = 1) and stores the
// project's signer key encrypted with it (AES-256-CTR, zero IV). The Firebase
// importer writes this layout from `firebase auth:export` and the project's
// hash config, so each hash carries what it takes to verify it.
// node:crypto's scrypt and the one AES block run in libuv's thread pool / natively.
import { createCipheriv, scrypt, type ScryptOptions } from 'node:crypto';
import { anySpelling, decodeBase64, type HashScheme } from './scheme.ts';

function scryptAsync(password: Buffer, salt: Buffer, length: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, length, options, (err, key) => (err ? reject(err) : resolve(key))));
}

/** Bounds on import: the memory one verification takes (128·N·r bytes) and its work (N·r·p), about a second here at the bound. */
export const SCRYPT_LIMITS = Object.freeze({ maxMemoryBytes: 256 * 1024 * 1024, maxWork: 2 ** 22 });

type Params = { N: number; r: number; p: number };

function outOfBounds({ N, r, p }: Params): string | null {
  if (!Number.isSafeInteger(N) || N < 2 || r < 1 || p < 1) return 'scrypt parameters must be positive (N ≥ 2)';
  if (128 * N * r > SCRYPT_LIMITS.maxMemoryBytes) return `scrypt memory 128·N·r = ${128 * N * r} bytes is above ${SCRYPT_LIMITS.maxMemoryBytes}`;
  if (N * r * p > SCRYPT_LIMITS.maxWork) return `scrypt work N·r·p = ${N * r * p} is above ${SCRYPT_LIMITS.maxWork}`;
  return null;
}

const options = ({ N, r, p }: Params): ScryptOptions => ({ N, r, p, maxmem: 128 * N * r * 2 + 1024 * 1024 });

const PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/.]*)\$([A-Za-z0-9+/.]+)$/;

function parsePhc(hash: string): (Params & { salt: Buffer; key: Buffer }) | null {
  const m = PHC.exec(hash);
  if (!m) return null;
  return { N: 2 ** Number(m[1]), r: Number(m[2]), p: Number(m[3]), salt: decodeBase64(m[4]!)!, key: decodeBase64(m[5]!)! };
}

export const scryptScheme: HashScheme = {
  name: 'scrypt',
  recognizes: (hash) => hash.startsWith('$scrypt$'),
  refuses(hash) {
    const p = parsePhc(hash);
    if (!p) return 'not a scrypt PHC string ($scrypt$ln=…,r=…,p=…$salt$key)';
    if (p.key.length < 16 || p.key.length > 128) return `scrypt key of ${p.key.length} bytes is outside 16-128`;
    return outOfBounds(p);
  },
  async verify(hash, password) {
    const p = parsePhc(hash);
    if (!p || outOfBounds(p)) return false;
    return anySpelling(password, (bytes) => scryptAsync(bytes, p.salt, p.key.length, options(p)), p.key);
  },
};

const B64 = '([A-Za-z0-9+/]*={0,2})';
const FIREBASE = new RegExp(`^\\$firebase-scrypt\\$m=(\\d{1,2}),r=(\\d{1,2})\\$${B64}\\$${B64}\\$${B64}\\$${B64}$`);

export type FirebaseHashConfig = { signerKey: Buffer; saltSeparator: Buffer; rounds: number; memCost: number };

/** The stored form of a Firebase user's hash (salt and hash as `firebase auth:export` writes them, base64). */
export function firebaseHash(config: FirebaseHashConfig, salt: string, hash: string): string {
  const b64 = (b: Buffer) => b.toString('base64');
  return `$firebase-scrypt$m=${config.memCost},r=${config.rounds}$${salt}$${hash}$${b64(config.saltSeparator)}$${b64(config.signerKey)}`;
}

function parseFirebase(hash: string) {
  const m = FIREBASE.exec(hash);
  if (!m) return null;
  const [salt, stored, separator, signerKey] = m.slice(3).map((s) => Buffer.from(s, 'base64')) as [Buffer, Buffer, Buffer, Buffer];
  return { N: 2 ** Number(m[1]), r: Number(m[2]), p: 1, salt, stored, separator, signerKey };
}

export const firebaseScryptScheme: HashScheme = {
  name: 'firebase-scrypt',
  recognizes: (hash) => hash.startsWith('$firebase-scrypt$'),
  refuses(hash) {
    const f = parseFirebase(hash);
    if (!f) return 'not a Firebase scrypt hash ($firebase-scrypt$m=…,r=…$salt$hash$separator$signer key)';
    if (f.signerKey.length < 16 || f.stored.length !== f.signerKey.length) return 'firebase hash and signer key must be the same length (at least 16 bytes)';
    return outOfBounds(f);
  },
  async verify(hash, password) {
    const f = parseFirebase(hash);
    if (!f || outOfBounds(f)) return false;
    const salt = Buffer.concat([f.salt, f.separator]);
    return anySpelling(
      password,
      async (bytes) => {
        const key = await scryptAsync(bytes, salt, 32, options(f));
        const aes = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
        return Buffer.concat([aes.update(f.signerKey), aes.final()]);
      },
      f.stored,
    );
  },
};
