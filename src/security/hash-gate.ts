// CPU protection: at most MAX_CONCURRENT_HASHES password verifications in
// flight per process (argon2 runs in libuv's pool, so keep this at or below
// UV_THREADPOOL_SIZE). Beyond it a login is shed at once with 503 rather than
// queued, so the event loop stays free for JWKS and refresh traffic.
import { errors } from 'oidc-provider';

export class LoginsOverloaded extends errors.OIDCProviderError {
  constructor() {
    super(503, 'temporarily_unavailable');
    this.expose = true;
    (this as unknown as { error_description: string }).error_description = 'too many logins in progress, try again shortly';
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

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#inFlight >= this.max) throw new LoginsOverloaded();
    this.#inFlight++;
    try {
      return await fn();
    } finally {
      this.#inFlight--;
    }
  }
}
