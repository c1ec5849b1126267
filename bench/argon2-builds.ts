// `npm run bench:argon2`: the prebuilt argon2 binary (SSE2) against the same
// source built with AVX2 (scripts/build-argon2-avx2.sh), same parameters,
// interleaved rounds, median time per verification. Bounded: ~6 rounds of 20.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Argon2 = typeof import('argon2');
const root = new URL('..', import.meta.url).pathname;
const require = createRequire(import.meta.url);
const work = mkdtempSync(join(tmpdir(), 'argon2-avx2-'));
try {
  cpSync(join(root, 'node_modules/argon2'), join(work, 'argon2'), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(work, 'node_modules')); // node-addon-api, node-gyp-build
  execFileSync('bash', [join(root, 'scripts/build-argon2-avx2.sh'), join(work, 'argon2')], { stdio: 'inherit' });
  const builds: Record<string, Argon2> = {
    prebuilt: require(join(root, 'node_modules/argon2/argon2.cjs')),
    avx2: require(join(work, 'argon2/argon2.cjs')),
  };
  const out: Record<string, unknown>[] = [];
  for (const params of [
    { memoryCost: 19_456, timeCost: 2, parallelism: 1 },
    { memoryCost: 7168, timeCost: 5, parallelism: 1 },
  ]) {
    const times: Record<string, number[]> = { prebuilt: [], avx2: [] };
    const hashes: Record<string, string> = {};
    for (const [name, a] of Object.entries(builds)) hashes[name] = await a.hash('bench password 123', { type: a.argon2id, ...params });
    for (let round = 0; round < 6; round++) {
      for (const [name, a] of Object.entries(builds)) {
        const t = performance.now();
        for (let i = 0; i < 20; i++) await a.verify(hashes[name]!, 'bench password 123');
        times[name]!.push((performance.now() - t) / 20);
      }
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const row = {
      params,
      prebuilt_ms: Number(median(times.prebuilt!).toFixed(1)),
      avx2_ms: Number(median(times.avx2!).toFixed(1)),
      speedup: Number((median(times.prebuilt!) / median(times.avx2!)).toFixed(2)),
    };
    out.push(row);
    console.log(JSON.stringify(row));
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
