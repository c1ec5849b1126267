// Private keys at rest: AES-256-GCM under the key-encryption key (KEK), with
// the key id as additional data so a ciphertext cannot be moved to another row.
// Format: v1.<iv>.<ciphertext>.<tag>, each base64url.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ServiceError } from '../errors.ts';

export function seal(kek: Buffer, plaintext: string, aad: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, iv).setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', iv, body, cipher.getAuthTag()].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
}

export function unseal(kek: Buffer, sealed: string, aad: string): string {
  const [version, iv, body, tag] = sealed.split('.');
  if (version !== 'v1' || !iv || !body || !tag) {
    throw new ServiceError('internal', 'unknown sealed key format');
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', kek, Buffer.from(iv, 'base64url'))
      .setAAD(Buffer.from(aad))
      .setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
  } catch (err) {
    throw new ServiceError('config_invalid', 'cannot decrypt a signing key: KEY_ENCRYPTION_KEY is not the one it was sealed with', {
      cause: err,
    });
  }
}
