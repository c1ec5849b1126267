// CPU protection: at most MAX_CONCURRENT_HASHES password verifications in
// flight per process. Beyond it a login is shed at once with 503 rather than
// queued, so the event loop stays free for JWKS and refresh traffic; the
// password grant checks `full` before any other work (src/http/shed-door.ts).
// argon2 runs in libuv's thread pool, which prepareThreadPool sizes and
// deprioritizes so that hashing never delays the event loop or a signature.
import { readdir, readFile, stat } from 'node:fs/promises';
import { setPriority } from 'node:os';
import { ServiceError } from '../errors.ts';

/** The error_description of a shed login, wherever it is shed. */
export const OVERLOADED = 'too many logins in progress, try again shortly';

/** 503 temporarily_unavailable: the hash gate is full. */
export class Overloaded extends ServiceError {
  constructor() {
    super('temporarily_unavailable', OVERLOADED);
    this.name = 'Overloaded';
  }
}

export class HashGate {
  readonly max: number;
  #inFlight = 0;

  constructor(max: number) {
    this.max = max;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** No slot free right now: a login would be shed (checked before any other work). */
  get full(): boolean {
    return this.#inFlight >= this.max;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.full) throw new Overloaded();
    this.#inFlight++;
    try {
      return await fn();
    } finally {
      this.#inFlight--;
    }
  }
}

/**
 * Readies libuv's thread pool for hashing. The pool runs argon2, and also
 * every JWT signature (WebCrypto), file and DNS job: with as many hashes in
 * flight as threads, a refresh waits for a hash to finish before its token
 * can be signed. So:
 *  - unless UV_THREADPOOL_SIZE is set, the pool gets `maxConcurrentHashes`
 *    + 2 threads (at least libuv's 4); this must run before the pool's first
 *    use, which the composition root does;
 *  - its threads get the nice value `nice` (0-19): when hashing saturates the
 *    cores, the kernel gives a nice-10 thread about a tenth of the weight of
 *    the event loop, which then still answers refresh, JWKS and shed logins
 *    at once. Linux only (threads found by name under /proc/self/task).
 * Returns the pool's size and how many threads were reniced (0 elsewhere).
 */
export async function prepareThreadPool(opts: { maxConcurrentHashes: number; nice: number }): Promise<{ threads: number; reniced: number }> {
  process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, opts.maxConcurrentHashes + 2));
  await stat('.'); // the pool starts on its first use: now
  const tasks = await readdir('/proc/self/task').catch(() => [] as string[]);
  let threads = 0;
  let reniced = 0;
  for (const tid of tasks) {
    const name = await readFile(`/proc/self/task/${tid}/comm`, 'utf8').catch(() => '');
    if (name.trim() !== 'libuv-worker') continue;
    threads++;
    if (!opts.nice) continue;
    setPriority(Number(tid), opts.nice); // on Linux, a thread id sets that thread alone
    reniced++;
  }
  return { threads, reniced };
}
