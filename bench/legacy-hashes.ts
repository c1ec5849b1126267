// `npm run bench:legacy-hashes`: what an imported hash costs, through the
// service's PasswordHasher. For each scheme and cost (bcrypt 10, 12 and the
// import maximum 14; argon2id at the import bounds) it times one wrong guess
// and then four in parallel, and records the event loop's longest delay
// meanwhile: verification runs in native code on libuv's pool, so the loop
// should stay within a few ms (bcryptjs, before, blocked it ~200 ms). Bounded:
// 4 rounds per case. The hashes come from mkpasswd (libxcrypt), passlib and
// slappasswd, not from us; the other schemes are timed at their import bounds.
import { execFileSync } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import argon2 from 'argon2';
import { ARGON2_IMPORT_LIMITS } from '../src/accounts/hash-schemes/argon2.ts';
import { BCRYPT_COST } from '../src/accounts/hash-schemes/bcrypt.ts';
import { PBKDF2_MAX_WORK } from '../src/accounts/hash-schemes/pbkdf2.ts';
import { SHA_CRYPT_MAX_ROUNDS } from '../src/accounts/hash-schemes/sha-crypt.ts';
import { PasswordHasher } from '../src/accounts/passwords.ts';

const hasher = new PasswordHasher({ memoryCost: 19_456, timeCost: 2, parallelism: 1 });
const password = 'the legacy password';
const L = ARGON2_IMPORT_LIMITS;
const argon2Hash = (memoryCost: number, timeCost: number) => argon2.hash(password, { type: argon2.argon2id, memoryCost, timeCost, parallelism: 1 });
const cases: [string, () => Promise<string> | string][] = [
  ...[10, 12, BCRYPT_COST.max].map((cost): [string, () => string] => [`bcrypt cost ${cost}`, () => execFileSync('mkpasswd', ['-m', 'bcrypt', '-R', String(cost), password]).toString().trim()]),
  [`argon2id m=${L.maxMemoryKib} t=${L.maxWorkKibPasses / L.maxMemoryKib} (import bound)`, () => argon2Hash(L.maxMemoryKib, L.maxWorkKibPasses / L.maxMemoryKib)],
  [`argon2id m=${L.maxWorkKibPasses / 16} t=16 (import bound)`, () => argon2Hash(L.maxWorkKibPasses / 16, 16)],
  // The other imported formats at their import bounds, made by passlib (python3-passlib).
  [`sha-crypt $6$ rounds=5000 (glibc default)`, () => passlib('sha512_crypt', { rounds: 5000 })],
  [`sha-crypt $6$ rounds=${SHA_CRYPT_MAX_ROUNDS} (import bound)`, () => passlib('sha512_crypt', { rounds: SHA_CRYPT_MAX_ROUNDS })],
  [`pbkdf2-sha256 ${PBKDF2_MAX_WORK.sha256} iterations (import bound)`, () => passlib('pbkdf2_sha256', { rounds: PBKDF2_MAX_WORK.sha256 })],
  [`pbkdf2-sha512 ${PBKDF2_MAX_WORK.sha512} iterations (import bound)`, () => passlib('pbkdf2_sha512', { rounds: PBKDF2_MAX_WORK.sha512 })],
  ['scrypt ln=16 r=8 p=1 (passlib default)', () => passlib('scrypt', { rounds: 16 })],
  ['scrypt ln=15 r=8 p=16 (import bound: N·r·p = 2^22)', () => passlib('scrypt', { rounds: 15, parallelism: 16 })],
  ['{SSHA} (slappasswd)', () => execFileSync('slappasswd', ['-h', '{SSHA}', '-s', password]).toString().trim()],
];

function passlib(hasher: string, options: Record<string, number>): string {
  const code = 'import json,sys; from passlib import hash as h; print(getattr(h, sys.argv[1]).using(**json.loads(sys.argv[3])).hash(sys.argv[2]))';
  return execFileSync('/usr/bin/python3', ['-c', code, hasher, password, JSON.stringify(options)]).toString().trim();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const rows = [];
for (const [name, make] of cases) {
  const hash = await make();
  const one: number[] = [];
  const four: number[] = [];
  let maxLoopDelay = 0;
  for (let round = 0; round < 4; round++) {
    let t0 = performance.now();
    await hasher.verify(hash, 'a wrong guess');
    one.push(performance.now() - t0);
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    t0 = performance.now();
    await Promise.all(Array.from({ length: 4 }, () => hasher.verify(hash, 'a wrong guess')));
    four.push(performance.now() - t0);
    loop.disable();
    maxLoopDelay = Math.max(maxLoopDelay, loop.max / 1e6);
  }
  rows.push({ case: name, 'one guess ms': Math.round(median(one)), '4 parallel ms': Math.round(median(four)), 'event loop max delay ms': +maxLoopDelay.toFixed(1) });
}
console.table(rows);
