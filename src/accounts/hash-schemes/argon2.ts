// argon2 (argon2id, argon2i, argon2d) in PHC string form:
//   $argon2id$v=19$m=19456,t=2,p=1$<salt>$<digest>
// The parameters may come in any order (this service's own hasher writes
// m,p,t; others write m,t,p); the version is 19 or 16 (absent means 16).
// Verification runs in the native binding's libuv thread.
import argon2 from 'argon2';
import type { HashScheme } from './scheme.ts';

const PHC = /^\$argon2(id|i|d)(?:\$v=(\d+))?\$([a-z]=\d+(?:,[a-z]=\d+)*)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/;

/**
 * Parameters accepted on import. m × t bounds the work of one verification
 * (about a second here at the bound, like bcrypt cost 14); m alone bounds the
 * memory each verification in flight takes.
 */
export const ARGON2_IMPORT_LIMITS = Object.freeze({
  maxMemoryKib: 262_144, // 256 MiB
  maxTimeCost: 64,
  maxParallelism: 16,
  maxWorkKibPasses: 1_048_576, // m × t: 1 GiB·pass
});

export type Argon2PhcParams = { variant: 'id' | 'i' | 'd'; version: number; m: number; t: number; p: number };

/** The PHC string's parameters, or why it is not a usable argon2 hash. */
export function parseArgon2(hash: string): Argon2PhcParams | string {
  const match = PHC.exec(hash);
  if (!match) return 'not an argon2 PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash)';
  const version = match[2] === undefined ? 16 : Number(match[2]);
  if (version !== 16 && version !== 19) return `argon2 version ${version} is neither 19 nor 16`;
  const params = new Map<string, number>();
  for (const pair of match[3]!.split(',')) {
    const [key, value] = pair.split('=') as [string, string];
    if (params.has(key)) return `argon2 parameter ${key} is repeated`;
    params.set(key, Number(value));
  }
  const unknown = [...params.keys()].filter((k) => !'mtp'.includes(k));
  if (unknown.length) return `argon2 parameters must be m, t and p (got ${unknown.join(', ')})`;
  const [m, t, p] = [params.get('m'), params.get('t'), params.get('p')];
  if (m === undefined || t === undefined || p === undefined) return 'argon2 needs all of m, t and p';
  return { variant: match[1] as Argon2PhcParams['variant'], version, m, t, p };
}

/** Django stores argon2 as `argon2` + the PHC string (`argon2$argon2id$v=19$…`). */
const DJANGO_PREFIX = 'argon2$';
const phc = (hash: string) => (hash.startsWith(DJANGO_PREFIX) ? hash.slice(DJANGO_PREFIX.length - 1) : hash);

export const argon2Scheme: HashScheme = {
  name: 'argon2',
  recognizes: (hash) => phc(hash).startsWith('$argon2'),
  refuses(stored) {
    const hash = phc(stored);
    const parsed = parseArgon2(hash);
    if (typeof parsed === 'string') return parsed;
    const { m, t, p } = parsed;
    const L = ARGON2_IMPORT_LIMITS;
    if (p < 1 || p > L.maxParallelism) return `argon2 p=${p} is outside 1-${L.maxParallelism}`;
    if (t < 1 || t > L.maxTimeCost) return `argon2 t=${t} is outside 1-${L.maxTimeCost}`;
    if (m < 8 * p || m > L.maxMemoryKib) return `argon2 m=${m} is outside ${8 * p}-${L.maxMemoryKib} KiB`;
    if (m * t > L.maxWorkKibPasses) return `argon2 m × t = ${m * t} is above ${L.maxWorkKibPasses}`;
    return null;
  },
  async verify(hash, { normalized }) {
    try {
      return await argon2.verify(phc(hash), normalized);
    } catch {
      return false; // an unusable stored hash never authenticates
    }
  },
};
