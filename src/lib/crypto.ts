// The service's few cryptographic helpers, in one place: digests of secrets
// (tokens, client secrets, usernames as Redis keys), keys derived from the
// KEK, random tokens, and one authenticated-encryption format for data at rest.
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

/** SHA-256, base64url. For high-entropy secrets (tokens, client secrets) and keys, never for passwords. */
export function sha256(value: string | Buffer): string {
  return createHash('sha256').update(value).digest('base64url');
}

/**
 * A 256-bit key for one purpose, derived from the key-encryption key with
 * HKDF-SHA256 (`purpose` is the info string): every replica derives the same
 * key without another secret, and no two purposes share one.
 */
export function deriveKey(kek: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', kek, '', purpose, 32));
}

/** HMAC-SHA256, base64url: a digest only the holder of `key` can compute (or test a guess against). */
export function keyedHash(key: Buffer, value: string): string {
  return createHmac('sha256', key).update(value).digest('base64url');
}

/** `bytes` random bytes, base64url (32 bytes = 256 bits). */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** Constant-time comparison of two strings. */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Thrown by unseal() when the key or the associated data do not match. */
export class SealError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SealError';
  }
}

/**
 * AES-256-GCM with associated data that binds the ciphertext to its place
 * (a key id, a client id), so it cannot be moved elsewhere.
 * Format: v1.<iv>.<ciphertext>.<tag>, each base64url.
 */
export function seal(key: Buffer, plaintext: string, aad: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', iv, body, cipher.getAuthTag()].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
}

export function unseal(key: Buffer, sealed: string, aad: string): string {
  const [version, iv, body, tag] = sealed.split('.');
  if (version !== 'v1' || !iv || body === undefined || !tag) throw new SealError('unknown sealed format');
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'))
      .setAAD(Buffer.from(aad))
      .setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
  } catch (cause) {
    throw new SealError('cannot decrypt: wrong key or associated data', { cause });
  }
}
