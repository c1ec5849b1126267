// Counters for abuse limits (rate-limiter-flexible): in Redis so that every
// replica sees the same numbers, in memory only in development (no
// REDIS_URL), where there is one process anyway. Every operation is one
// atomic Redis command (INCRBY with an expiry, in a script), so concurrent
// requests on any number of replicas never read-then-write past a limit.
//
// There is no insuranceLimiter: when Redis is down, a limited operation fails
// closed (StoreUnavailable → 503) rather than being counted per process.
//
// `add` reserves before the work and `refund` gives the point back when the
// work turned out fine: that is how the login and client-authentication
// limits stay exact under parallel requests. `take` is the plain form for
// "at most N per window" limits (registration, reset requests): add one,
// allowed while the count stays within the limit.
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract, type RateLimiterRes } from 'rate-limiter-flexible';
import { redisCall, type RedisClient } from '../store/redis.ts';

/** Where counters live: Redis (production), or this process (development). */
export type LimiterStore = { redis: RedisClient | undefined; prefix: string };

export type Count = { count: number; retryAfterSeconds: number };

export type Taken = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/** Seconds until a counter's window ends, for Retry-After: at least 1, rounded up. */
export const secondsLeft = (res: Pick<RateLimiterRes, 'msBeforeNext'> | null) => Math.max(1, Math.ceil((res?.msBeforeNext ?? 1000) / 1000));

const countOf = (res: RateLimiterRes): Count => ({ count: res.consumedPoints, retryAfterSeconds: secondsLeft(res) });

// The in-memory store expires keys with setTimeout, whose delay must fit in
// 31 bits of milliseconds (24.8 days); longer windows are cut to that there.
const MEMORY_MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

export class Limiter {
  /** The count beyond which `take` refuses. */
  readonly limit: number;
  readonly #rl: RateLimiterAbstract;
  readonly #redis: RedisClient | undefined;
  readonly #maxSeconds: number;

  /** `name` is part of the Redis key (`<prefix>rl:<name>:<key>`); keys should be hashes or IPs, never raw user input. */
  constructor(store: LimiterStore, name: string, opts: { limit: number; windowSeconds: number }) {
    this.limit = opts.limit;
    this.#redis = store.redis;
    this.#maxSeconds = store.redis ? Number.MAX_SAFE_INTEGER : MEMORY_MAX_SECONDS;
    this.#rl = store.redis
      ? new RateLimiterRedis({
          storeClient: store.redis,
          keyPrefix: `${store.prefix}rl:${name}`,
          points: opts.limit,
          duration: opts.windowSeconds,
          rejectIfRedisNotReady: true,
        })
      : new RateLimiterMemory({ keyPrefix: name, points: opts.limit, duration: Math.min(opts.windowSeconds, MEMORY_MAX_SECONDS) });
  }

  /** Adds `points` and returns the count in the window. `windowSeconds` applies only when this starts a window. */
  add(key: string, points = 1, windowSeconds?: number): Promise<Count> {
    const options = windowSeconds ? { customDuration: Math.min(windowSeconds, this.#maxSeconds) } : {};
    return redisCall(async () => countOf(await this.#rl.penalty(key, points, options)));
  }

  /** Gives back points taken by `add`. */
  refund(key: string, points = 1): Promise<void> {
    return redisCall(async () => {
      await this.#rl.reward(key, points);
    });
  }

  /** The count in the window, or null when there is none. */
  read(key: string): Promise<Count | null> {
    return redisCall(async () => {
      const redis = this.#redis;
      if (!redis) {
        const res = await this.#rl.get(key);
        return res ? countOf(res) : null;
      }
      // Plain GET and PTTL rather than rate-limiter-flexible's MULTI: with
      // auto-pipelining they share one network write with whatever else the
      // request reads in the same tick (a refresh's login record). A read
      // needs no transaction; a key expiring between the two reads as none.
      const rlKey = this.#rl.getKey(key);
      const [points, ttl] = await Promise.all([redis.get(rlKey), redis.pttl(rlKey)]);
      if (points === null || ttl === -2) return null;
      return { count: Number.parseInt(points, 10), retryAfterSeconds: secondsLeft({ msBeforeNext: ttl }) };
    });
  }

  /** Sets the count for `seconds` (a marker: "seen", "blocked"). */
  set(key: string, count: number, seconds: number): Promise<void> {
    return redisCall(async () => {
      await this.#rl.set(key, count, Math.min(seconds, this.#maxSeconds));
    });
  }

  clear(key: string): Promise<void> {
    return redisCall(async () => {
      await this.#rl.delete(key);
    });
  }

  /** One more; allowed while the count stays within the limit (the refused ones count too). */
  async take(key: string): Promise<Taken> {
    const { count, retryAfterSeconds } = await this.add(key);
    return count <= this.limit ? { allowed: true } : { allowed: false, retryAfterSeconds };
  }
}

/**
 * Sources (IPs, or IPv6 prefixes) a subject (an account, a client) has
 * recently authenticated from successfully. Limits that protect a subject
 * from strangers spare its familiar sources, so an attacker cannot lock the
 * owner out (SECURITY.md, "Familiar sources and strangers").
 */
export class FamiliarSources {
  readonly #seen: Limiter;
  readonly #windowSeconds: number;

  constructor(store: LimiterStore, name: string, windowSeconds: number) {
    this.#seen = new Limiter(store, name, { limit: 1, windowSeconds: Math.max(1, windowSeconds) });
    this.#windowSeconds = windowSeconds;
  }

  /** A window of 0 turns the notion off: no source is ever familiar. */
  async has(subject: string, source: string): Promise<boolean> {
    if (!this.#windowSeconds) return false;
    return (await this.#seen.read(`${subject}|${source}`)) !== null;
  }

  /** Remembers (or refreshes) the source for the whole window. */
  async remember(subject: string, source: string): Promise<void> {
    if (this.#windowSeconds) await this.#seen.set(`${subject}|${source}`, 1, this.#windowSeconds);
  }
}
