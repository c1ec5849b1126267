// Password hashes made by other implementations than this service's, the way
// legacy systems made them: Apache's htpasswd ($2y$), libxcrypt's mkpasswd
// ($2b$, $2a$), Python's bcrypt and argon2-cffi, and the argon2 reference CLI.
// All come from Debian packages (apache2-utils, whois, python3-bcrypt,
// python3-argon2, python3-passlib, argon2, openssl, slapd), which .ci/run installs. A missing tool fails the
// test that needs it, with the package to install: nothing is skipped.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

const PACKAGES: Record<string, string> = {
  htpasswd: 'apache2-utils',
  mkpasswd: 'whois',
  argon2: 'argon2',
  '/usr/bin/python3': 'python3-bcrypt python3-argon2 python3-passlib',
  openssl: 'openssl',
  slappasswd: 'slapd',
};

function run(command: string, args: string[], input?: Buffer | string): string {
  const r = spawnSync(command, args, { input, encoding: 'utf8', timeout: 60_000 });
  if (r.error || r.status !== 0) {
    throw new Error(
      `${command} failed (${r.error?.message ?? `exit ${r.status}: ${r.stderr}`}); install it with: apt-get install -y ${PACKAGES[command] ?? command}`,
    );
  }
  return r.stdout.trim();
}

/** Apache htpasswd: `$2y$`. Like every bcrypt, it reads only the first 72 bytes. */
export function htpasswdBcrypt(password: string, cost = 5): string {
  return run('htpasswd', ['-inBC', String(cost), 'user'], password).split(':')[1]!;
}

/** libxcrypt's mkpasswd: `$2b$`, or the obsolete `$2a$`. */
export function mkpasswdBcrypt(password: string, cost = 5, variant: 'b' | 'a' = 'b'): string {
  return run('mkpasswd', ['-m', variant === 'a' ? 'bcrypt-a' : 'bcrypt', '-R', String(cost), '--stdin'], password);
}

/** Python's bcrypt (3.x silently hashes the first 72 bytes of what it is given). */
export function pythonBcrypt(password: string | Buffer, cost = 5): string {
  const hex = Buffer.from(password).toString('hex');
  return run('/usr/bin/python3', ['-c', 'import bcrypt,sys; print(bcrypt.hashpw(bytes.fromhex(sys.argv[1]), bcrypt.gensalt(int(sys.argv[2]))).decode())', hex, String(cost)]);
}

/** The argon2 reference implementation's CLI: `$argon2<variant>$v=…$m=…,t=…,p=…$…` (memory as KiB, a power of two). */
export function argon2Cli(password: string, o: { variant?: 'id' | 'i' | 'd'; memoryKib?: number; t?: number; p?: number; version?: 10 | 13 } = {}): string {
  const log2 = Math.log2(o.memoryKib ?? 4096);
  if (!Number.isInteger(log2)) throw new Error('argon2 CLI memory must be a power of two KiB');
  const salt = randomBytes(12).toString('hex');
  const args = [salt, `-${o.variant ?? 'id'}`, '-t', String(o.t ?? 2), '-m', String(log2), '-p', String(o.p ?? 1), '-v', String(o.version ?? 13), '-e'];
  return run('argon2', args, password);
}

/** Python's argon2-cffi PasswordHasher (its defaults unless given). */
export function pythonArgon2(password: string, o: { memoryKib?: number; t?: number; p?: number } = {}): string {
  const code = 'import argon2,sys; m,t,p=map(int,sys.argv[2:5]); print(argon2.PasswordHasher(memory_cost=m,time_cost=t,parallelism=p).hash(bytes.fromhex(sys.argv[1])))';
  return run('/usr/bin/python3', ['-c', code, Buffer.from(password).toString('hex'), String(o.memoryKib ?? 65_536), String(o.t ?? 3), String(o.p ?? 4)]);
}

/** OpenSSL's SHA-crypt: `$5$` (-5) or `$6$` (-6), 5,000 rounds. */
export function opensslShaCrypt(password: string, variant: 5 | 6): string {
  return run('openssl', ['passwd', `-${variant}`, '-stdin'], password);
}

/** libxcrypt's mkpasswd SHA-crypt with explicit rounds (`$6$rounds=N$…`). */
export function mkpasswdShaCrypt(password: string, variant: 5 | 6, rounds: number): string {
  return run('mkpasswd', ['-m', variant === 5 ? 'sha-256' : 'sha-512', '-R', String(rounds), '--stdin'], password);
}

/** OpenLDAP's slappasswd: `{SSHA}` (salted SHA-1). The password is an argument: test passwords only. */
export function slappasswd(password: string): string {
  return run('slappasswd', ['-h', '{SSHA}', '-s', password]);
}

/** A passlib hasher by name (`pbkdf2_sha256`, `scrypt`, `ldap_salted_sha512`, …) with `using(**options)`. */
export function passlib(hasher: string, password: string, options: Record<string, number> = {}): string {
  const code = 'import json,sys; from passlib import hash as h; print(getattr(h, sys.argv[1]).using(**json.loads(sys.argv[3])).hash(bytes.fromhex(sys.argv[2]).decode()))';
  return run('/usr/bin/python3', ['-c', code, hasher, Buffer.from(password).toString('hex'), JSON.stringify(options)]);
}

/** Python's hashlib.pbkdf2_hmac with a random salt: what Django, ASP.NET and Keycloak wrap in their layouts. */
function pythonPbkdf2(password: string, digest: string, iterations: number, length: number, saltBytes = 16): { salt: Buffer; key: Buffer } {
  const code = 'import hashlib,os,sys; s=os.urandom(int(sys.argv[5])); k=hashlib.pbkdf2_hmac(sys.argv[2], bytes.fromhex(sys.argv[1]), s, int(sys.argv[3]), int(sys.argv[4])); print(s.hex(), k.hex())';
  const [salt, key] = run('/usr/bin/python3', ['-c', code, Buffer.from(password).toString('hex'), digest, String(iterations), String(length), String(saltBytes)]).split(' ');
  return { salt: Buffer.from(salt!, 'hex'), key: Buffer.from(key!, 'hex') };
}

/** Django's `pbkdf2_sha256$<iterations>$<salt text>$<base64 key>`, computed by hashlib. */
export function djangoPbkdf2(password: string, iterations = 1_000_000): string {
  const code = 'import base64,hashlib,secrets,sys; s=secrets.token_hex(11); k=hashlib.pbkdf2_hmac("sha256", bytes.fromhex(sys.argv[1]), s.encode(), int(sys.argv[2])); print("pbkdf2_sha256$%s$%s$%s" % (sys.argv[2], s, base64.b64encode(k).decode()))';
  return run('/usr/bin/python3', ['-c', code, Buffer.from(password).toString('hex'), String(iterations)]);
}

/** ASP.NET Core Identity v3: base64 of 0x01 | PRF | iterations | salt length | salt | key (big-endian), keys from hashlib. */
export function aspNetV3(password: string, prf: 'sha256' | 'sha512' = 'sha256', iterations = 100_000): string {
  const { salt, key } = pythonPbkdf2(password, prf, iterations, 32);
  const header = Buffer.alloc(13);
  header[0] = 0x01;
  header.writeUInt32BE(prf === 'sha256' ? 1 : 2, 1);
  header.writeUInt32BE(iterations, 5);
  header.writeUInt32BE(salt.length, 9);
  return Buffer.concat([header, salt, key]).toString('base64');
}

/** A Keycloak password credential (realm export layout) with PBKDF2 from hashlib: 64-byte key, as Keycloak derives. */
export function keycloakPbkdf2Credential(password: string, algorithm: 'pbkdf2-sha256' | 'pbkdf2-sha512', iterations: number) {
  const { salt, key } = pythonPbkdf2(password, algorithm.slice(7), iterations, 64);
  return {
    type: 'password',
    secretData: JSON.stringify({ value: key.toString('base64'), salt: salt.toString('base64'), additionalParameters: {} }),
    credentialData: JSON.stringify({ hashIterations: iterations, algorithm, additionalParameters: {} }),
  };
}

/** A Keycloak argon2 credential (Keycloak 24+): raw hash and salt from argon2-cffi's low-level API. */
export function keycloakArgon2Credential(password: string, o: { memoryKib: number; t: number; p: number }) {
  const code = 'import os,sys; from argon2.low_level import hash_secret_raw, Type; s=os.urandom(16); m,t,p=map(int,sys.argv[2:5]); print(s.hex(), hash_secret_raw(bytes.fromhex(sys.argv[1]), s, t, m, p, 32, Type.ID).hex())';
  const [salt, key] = run('/usr/bin/python3', ['-c', code, Buffer.from(password).toString('hex'), String(o.memoryKib), String(o.t), String(o.p)]).split(' ');
  return {
    type: 'password',
    secretData: JSON.stringify({ value: Buffer.from(key!, 'hex').toString('base64'), salt: Buffer.from(salt!, 'hex').toString('base64'), additionalParameters: {} }),
    credentialData: JSON.stringify({
      hashIterations: o.t,
      algorithm: 'argon2',
      additionalParameters: { hashLength: ['32'], memory: [String(o.memoryKib)], type: ['id'], version: ['1.3'], parallelism: [String(o.p)] },
    }),
  };
}

/** Firebase's published test vector for its modified scrypt (the firebase/scrypt README). */
export const FIREBASE_VECTOR = Object.freeze({
  hashConfig: {
    algorithm: 'SCRYPT',
    base64_signer_key: 'jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA==',
    base64_salt_separator: 'Bw==',
    rounds: 8,
    mem_cost: 14,
  },
  password: 'user1password',
  salt: '42xEC+ixf3L2lw==',
  passwordHash: 'lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==',
});
