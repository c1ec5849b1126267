// Password hashing: argon2id with parameters from config. Verification of any
// stored scheme (argon2 of ours, bcrypt or argon2 imported from older systems,
// see ./hash-schemes) runs in native code on libuv's thread pool, so hashing
// never blocks the event loop.
import { trace } from '@opentelemetry/api';
import argon2 from 'argon2';
import { schemeOf } from './hash-schemes/index.ts';

/** Bound on input so that a huge "password" cannot be used to burn CPU. */
export const MAX_PASSWORD_BYTES = 1024;

/** What this service writes. Anything else (bcrypt, argon2i/d) is a legacy hash, replaced at the next login. */
export const ARGON2ID_PREFIX = '$argon2id$';

export function isLegacyHash(hash: string): boolean {
  return !hash.startsWith(ARGON2ID_PREFIX);
}

export type Argon2Params = Readonly<{ memoryCost: number; timeCost: number; parallelism: number }>;

/** Observes how long each hash or verification took (the metrics histogram). */
export type HashTimer = (operation: 'hash' | 'verify', seconds: number) => void;

// A span per hash or verification when tracing is on (src/observability/tracing.ts;
// a no-op otherwise). Its only attribute is the operation: never the password
// or the hash, nor whether an account exists (a dummy verification looks alike).
const tracer = trace.getTracer('identity-service');

function timed<T>(timer: HashTimer | undefined, operation: 'hash' | 'verify', work: () => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(`password ${operation}`, { attributes: { 'identity.password.operation': operation } }, async (span) => {
    const started = performance.now();
    try {
      return await work();
    } finally {
      timer?.(operation, (performance.now() - started) / 1000);
      span.end();
    }
  });
}

export class PasswordHasher {
  readonly #options: { type: 0 | 1 | 2; memoryCost: number; timeCost: number; parallelism: number };
  readonly #timer: HashTimer | undefined;
  #dummy: Promise<string> | undefined;

  constructor(params: Argon2Params, timer?: HashTimer) {
    this.#options = { type: argon2.argon2id, ...params };
    this.#timer = timer;
  }

  /** Passwords are compared in Unicode NFC so that NFC and NFD input match. */
  static normalize(password: string): string {
    return password.normalize('NFC');
  }

  hash(password: string): Promise<string> {
    return timed(this.#timer, 'hash', () => argon2.hash(PasswordHasher.normalize(password), this.#options));
  }

  /**
   * Verifies `password` against `hash`, by the hash's scheme. With no hash
   * (unknown user, user without a password) or one no scheme reads, it still
   * spends one verification on a dummy hash, so response time does not tell
   * whether an account exists.
   */
  async verify(hash: string | null | undefined, password: string): Promise<boolean> {
    const tooLong = Buffer.byteLength(password) > MAX_PASSWORD_BYTES;
    const scheme = hash && !tooLong ? schemeOf(hash) : undefined;
    if (!hash || !scheme) {
      const dummy = await this.#dummyHash();
      await timed(this.#timer, 'verify', () => argon2.verify(dummy, tooLong ? '' : PasswordHasher.normalize(password)));
      return false;
    }
    const candidate = { typed: password, normalized: PasswordHasher.normalize(password) };
    return timed(this.#timer, 'verify', () => scheme.verify(hash, candidate));
  }

  needsRehash(hash: string): boolean {
    if (isLegacyHash(hash)) return true;
    try {
      return argon2.needsRehash(hash, this.#options);
    } catch {
      return true;
    }
  }

  #dummyHash(): Promise<string> {
    return (this.#dummy ??= argon2.hash('dummy password for timing equalization', this.#options));
  }
}
