// Password hashes made by other implementations than this service's, the way
// legacy systems made them: Apache's htpasswd ($2y$), libxcrypt's mkpasswd
// ($2b$, $2a$), Python's bcrypt and argon2-cffi, and the argon2 reference CLI.
// All come from Debian packages (apache2-utils, whois, python3-bcrypt,
// python3-argon2, argon2), which .ci/run installs. A missing tool fails the
// test that needs it, with the package to install: nothing is skipped.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

const PACKAGES: Record<string, string> = {
  htpasswd: 'apache2-utils',
  mkpasswd: 'whois',
  argon2: 'argon2',
  '/usr/bin/python3': 'python3-bcrypt python3-argon2',
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
