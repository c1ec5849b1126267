// Signing keys: created once, stored in Postgres with the private part sealed
// under the KEK, and shared by every replica. An advisory lock makes sure two
// replicas booting together on an empty database create exactly one key.
import { generateKeyPair, exportJWK, calculateJwkThumbprint, type JWK } from 'jose';
import type { Db } from '../store/postgres.ts';
import { seal, unseal } from './sealing.ts';

export type SigningAlg = 'ES256' | 'EdDSA' | 'PS256';

const LOCK_KEY = 72_707_370;

async function newKey(alg: SigningAlg): Promise<{ kid: string; privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}),
    ...(alg === 'PS256' ? { modulusLength: 3072 } : {}),
  });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const meta = { kid, alg, use: 'sig' };
  return { kid, privateJwk: { ...(await exportJWK(privateKey)), ...meta }, publicJwk: { ...publicJwk, ...meta } };
}

/**
 * Returns the private JWKs oidc-provider should load: the active key for
 * `alg` first (created if there is none), then other published keys.
 */
export async function loadSigningKeys(db: Db, kek: Buffer, alg: SigningAlg): Promise<JWK[]> {
  const rows = await db.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(${LOCK_KEY})`;
    const active = await tx.signingKey.findFirst({ where: { status: 'active', alg } });
    if (!active) {
      // A change of SIGNING_ALG: the previous key stays published, stops signing.
      await tx.signingKey.updateMany({ where: { status: 'active' }, data: { status: 'retiring' } });
      const key = await newKey(alg);
      await tx.signingKey.create({
        data: {
          kid: key.kid,
          alg,
          status: 'active',
          publicJwk: key.publicJwk as object,
          privateJwkEnc: seal(kek, JSON.stringify(key.privateJwk), key.kid),
          activatedAt: new Date(),
        },
      });
    }
    return tx.signingKey.findMany({
      where: { status: { in: ['active', 'next', 'retiring'] } },
      orderBy: { createdAt: 'desc' },
    });
  });
  const ordered = [...rows.filter((r) => r.status === 'active' && r.alg === alg), ...rows.filter((r) => !(r.status === 'active' && r.alg === alg))];
  return ordered.map((r) => JSON.parse(unseal(kek, r.privateJwkEnc, r.kid)) as JWK);
}
