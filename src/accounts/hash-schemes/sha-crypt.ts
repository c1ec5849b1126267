// SHA-crypt `$5$` / `$6$` (shadow files, many LDAP exports: `{CRYPT}$6$…`
// with the prefix removed by the importer). node:crypto hashes each round
// natively, but the thousands of rounds are a JavaScript loop: each
// verification runs in its own short-lived worker thread, so the event loop
// never runs them.
import { Worker } from 'node:worker_threads';
import { ROUNDS_DEFAULT, SHA_CRYPT } from './sha-crypt-core.ts';
import { sameBytes, spellings, type HashScheme } from './scheme.ts';

/** Rounds accepted on import: passlib's default is 656,000 (about a second here); glibc's is 5,000. */
export const SHA_CRYPT_MAX_ROUNDS = 700_000;

function inWorker(password: Buffer, id: string, salt: string, rounds: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./sha-crypt-worker.ts', import.meta.url), { workerData: { password, id, salt, rounds } });
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`sha-crypt worker exited with ${code}`)));
  });
}

export const shaCryptScheme: HashScheme = {
  name: 'sha-crypt',
  recognizes: (hash) => /^\$[56]\$/.test(hash),
  refuses(hash) {
    const m = SHA_CRYPT.exec(hash);
    if (!m) return 'not a SHA-crypt hash ($5$ or $6$, optional rounds=N$, salt of up to 16 characters, digest)';
    if ((m[1] === '5') !== (m[4]!.length === 43)) return `SHA-crypt $${m[1]}$ digest has the wrong length`;
    const rounds = m[2] === undefined ? ROUNDS_DEFAULT : Number(m[2]);
    if (rounds > SHA_CRYPT_MAX_ROUNDS) return `SHA-crypt rounds ${rounds} is above ${SHA_CRYPT_MAX_ROUNDS}`;
    return null;
  },
  async verify(hash, password) {
    const m = SHA_CRYPT.exec(hash);
    if (!m || this.refuses(hash)) return false;
    for (const bytes of spellings(password)) {
      try {
        if (sameBytes(Buffer.from(await inWorker(bytes, m[1]!, m[3]!, m[2])), Buffer.from(hash))) return true;
      } catch {
        return false;
      }
    }
    return false;
  },
};
