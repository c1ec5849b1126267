// PBKDF2 in the layouts other systems store it in:
//   PHC / passlib   $pbkdf2-sha256$i=27500,l=64$<salt>$<key>   (or $pbkdf2-sha512$;
//                   passlib writes the bare rounds "$29000$" and '.' for '+')
//   Django          pbkdf2_sha256$<iterations>$<salt as text>$<key, base64>
//   ASP.NET Core    base64 of 0x01 | PRF | iterations | salt length | salt | key
//   Identity v3     (PRF 1 = HMAC-SHA256, 2 = HMAC-SHA512, 0 = HMAC-SHA1;
//                   big-endian uint32s). v2 (0x00) is SHA1, 1000 rounds.
// Keycloak's pbkdf2-sha256/-sha512 credential records are rewritten into the
// PHC form by the Keycloak importer (src/accounts/importers/keycloak.ts).
// node:crypto's pbkdf2 runs in libuv's thread pool.
import { pbkdf2 } from 'node:crypto';
import { promisify } from 'node:util';
import { anySpelling, decodeBase64, type HashScheme } from './scheme.ts';

const derive = promisify(pbkdf2);

type Digest = 'sha1' | 'sha256' | 'sha512';
type Pbkdf2 = { digest: Digest; iterations: number; salt: Buffer; key: Buffer };

const BLOCK: Record<Digest, number> = { sha1: 20, sha256: 32, sha512: 64 };

/**
 * Bound on import: iterations × output blocks (one HMAC chain per block), by
 * digest (a SHA-512 iteration costs about twice a SHA-256 one here); each is
 * about bcrypt cost 14 (`npm run bench:legacy-hashes`).
 */
export const PBKDF2_MAX_WORK: Readonly<Record<Digest, number>> = Object.freeze({ sha1: 2_000_000, sha256: 2_000_000, sha512: 1_000_000 });

const PHC = /^\$pbkdf2-(sha256|sha512)\$(?:(\d+)|i=(\d+)(?:,l=(\d+))?)\$([A-Za-z0-9+/.]+)\$([A-Za-z0-9+/.]+)$/;
const DJANGO = /^pbkdf2_(sha256|sha1)\$(\d+)\$([^$]+)\$([A-Za-z0-9+/]+={0,2})$/;
const ASPNET = /^[A-Za-z0-9+/]{40,}={0,2}$/;
const ASPNET_PRF: (Digest | undefined)[] = ['sha1', 'sha256', 'sha512'];

/** The parameters of an ASP.NET Core Identity v2/v3 blob, or null when the string is not one. */
function parseAspNet(hash: string): Pbkdf2 | null {
  if (!ASPNET.test(hash)) return null;
  const blob = Buffer.from(hash, 'base64');
  if (blob[0] === 0x00 && blob.length === 49) {
    return { digest: 'sha1', iterations: 1000, salt: blob.subarray(1, 17), key: blob.subarray(17) };
  }
  if (blob[0] !== 0x01 || blob.length < 13) return null;
  const digest = ASPNET_PRF[blob.readUInt32BE(1)];
  const iterations = blob.readUInt32BE(5);
  const saltLength = blob.readUInt32BE(9);
  const key = blob.subarray(13 + saltLength);
  if (!digest || saltLength < 8 || key.length < 16) return null;
  return { digest, iterations, salt: blob.subarray(13, 13 + saltLength), key };
}

function parse(hash: string): Pbkdf2 | null {
  const phc = PHC.exec(hash);
  if (phc) {
    const [, digest, bare, i, l, salt, key] = phc;
    const keyBytes = decodeBase64(key!)!;
    if (l !== undefined && Number(l) !== keyBytes.length) return null;
    return { digest: digest as Digest, iterations: Number(bare ?? i), salt: decodeBase64(salt!)!, key: keyBytes };
  }
  const django = DJANGO.exec(hash);
  if (django) {
    const [, digest, iterations, salt, key] = django;
    return { digest: digest as Digest, iterations: Number(iterations), salt: Buffer.from(salt!, 'utf8'), key: Buffer.from(key!, 'base64') };
  }
  return parseAspNet(hash);
}

export const pbkdf2Scheme: HashScheme = {
  name: 'pbkdf2',
  recognizes: (hash) => hash.startsWith('$pbkdf2-') || hash.startsWith('pbkdf2_') || parseAspNet(hash) !== null,
  refuses(hash) {
    const p = parse(hash);
    if (!p) return 'not a PBKDF2 hash ($pbkdf2-sha256$…, Django pbkdf2_sha256$…, or ASP.NET Core Identity v2/v3)';
    if (p.key.length < 16 || p.key.length > 128) return `pbkdf2 key of ${p.key.length} bytes is outside 16-128`;
    if (p.salt.length < 1 || p.salt.length > 128) return `pbkdf2 salt of ${p.salt.length} bytes is outside 1-128`;
    const work = p.iterations * Math.ceil(p.key.length / BLOCK[p.digest]);
    const max = PBKDF2_MAX_WORK[p.digest];
    if (p.iterations < 1 || work > max) return `pbkdf2-${p.digest} ${p.iterations} iterations (× ${work / p.iterations} blocks) is outside 1-${max}`;
    return null;
  },
  async verify(hash, password) {
    const p = parse(hash);
    if (!p) return false;
    return anySpelling(password, (bytes) => derive(bytes, p.salt, p.iterations, p.key.length, p.digest), p.key);
  },
};
