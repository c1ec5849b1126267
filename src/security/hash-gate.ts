// CPU protection: at most MAX_CONCURRENT_HASHES password verifications in
// flight per process (argon2 runs in libuv's pool, so keep this at or below
// UV_THREADPOOL_SIZE). Beyond it a login is shed at once with 503 rather than
// queued, so the event loop stays free for JWKS and refresh traffic.
import { ServiceError } from '../errors.ts';

/** 503 temporarily_unavailable: the hash gate is full. */
export class Overloaded extends ServiceError {
  constructor() {
    super('temporarily_unavailable', 'too many logins in progress, try again shortly');
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
