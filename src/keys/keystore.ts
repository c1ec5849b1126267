// Signing key material: generation, and the public members a JWKS may carry.
import { generateKeyPair, exportJWK, calculateJwkThumbprint, type JWK } from 'jose';

export type SigningAlg = 'ES256' | 'EdDSA' | 'PS256';

export type NewKey = { kid: string; alg: SigningAlg; privateJwk: JWK; publicJwk: JWK };

// Members of a public JWK for the algorithms we allow; anything else (d, p, q,
// dp, dq, qi, oth, priv, x5c, ...) never leaves the service.
const PUBLIC_MEMBERS = ['kty', 'crv', 'x', 'y', 'n', 'e', 'kid', 'alg', 'use'] as const;

export function publicMembers(jwk: JWK): JWK {
  const out: Record<string, unknown> = {};
  for (const name of PUBLIC_MEMBERS) if (jwk[name] !== undefined) out[name] = jwk[name];
  return out as JWK;
}

export async function newKey(alg: SigningAlg): Promise<NewKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}),
    ...(alg === 'PS256' ? { modulusLength: 3072 } : {}),
  });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const meta = { kid, alg, use: 'sig' };
  return { kid, alg, privateJwk: { ...(await exportJWK(privateKey)), ...meta }, publicJwk: publicMembers({ ...publicJwk, ...meta }) };
}
