// Brute-force and credential-stuffing counters (rate-limiter-flexible), in
// Redis so that every replica sees the same numbers; in memory only in
// development (no REDIS_URL), where there is one process anyway.
//
//   account_ip  consecutive failures of one username from one IP: after
//               LOGIN_FREE_FAILURES, each failure blocks the pair for
//               base × 2^k seconds (capped); a success resets it
//   account     failures of one username from all IPs in the window
//   ip          failures from one IP, all usernames: 429 + Retry-After
//   global      failures per minute across everything: a spraying signal
//
// There is no insuranceLimiter: when Redis is down no token can be recorded
// either, so a login fails closed (503) rather than being counted per process.
// Callers key usernames by a hash (`user`), so Redis never holds an email
// address. Every method fails with StoreUnavailable('redis') when Redis does.
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract, type RateLimiterRes } from 'rate-limiter-flexible';
import type { Config } from '../config/index.ts';
import { redisCall, type RedisClient } from '../store/redis.ts';
import type { SecurityEvents } from './events.ts';

export type Verdict =
  | { kind: 'ok' }
  | { kind: 'throttled'; scope: 'account_ip' | 'account'; retryAfterSeconds: number }
  | { kind: 'rate_limited'; retryAfterSeconds: number };

type Limits = Config['abuse'];

const secondsLeft = (res: RateLimiterRes | null) => Math.max(1, Math.ceil((res?.msBeforeNext ?? 1000) / 1000));

/** The verdict from the three counters read before a login. Pure. */
export function verdict(
  limits: Pick<Limits, 'ipMaxFailures' | 'userMaxFailures'>,
  counters: { ip: RateLimiterRes | null; pairBlock: RateLimiterRes | null; account: RateLimiterRes | null },
): Verdict {
  const { ip, pairBlock, account } = counters;
  if (ip && ip.consumedPoints >= limits.ipMaxFailures) return { kind: 'rate_limited', retryAfterSeconds: secondsLeft(ip) };
  // block() stores points + 1: any block in force reads as more than one point.
  if (pairBlock && pairBlock.consumedPoints > 1) {
    return { kind: 'throttled', scope: 'account_ip', retryAfterSeconds: secondsLeft(pairBlock) };
  }
  if (account && account.consumedPoints >= limits.userMaxFailures) {
    return { kind: 'throttled', scope: 'account', retryAfterSeconds: secondsLeft(account) };
  }
  return { kind: 'ok' };
}

/**
 * How long the username+IP pair is blocked after its `failures`-th
 * consecutive failure: nothing for the free ones, then base × 2^k, capped. Pure.
 */
export function blockSeconds(limits: Pick<Limits, 'freeFailures' | 'blockBaseSeconds' | 'blockMaxSeconds'>, failures: number): number {
  const beyond = failures - limits.freeFailures;
  if (beyond <= 0) return 0;
  return Math.min(limits.blockMaxSeconds, limits.blockBaseSeconds * 2 ** Math.min(beyond - 1, 30));
}

export class LoginThrottle {
  readonly #limits: Limits;
  readonly #events: SecurityEvents;
  readonly #ip: RateLimiterAbstract;
  readonly #account: RateLimiterAbstract;
  readonly #pair: RateLimiterAbstract;
  readonly #pairBlock: RateLimiterAbstract;
  readonly #global: RateLimiterAbstract;

  constructor(limits: Limits, events: SecurityEvents, redis: RedisClient | undefined, prefix: string) {
    this.#limits = limits;
    this.#events = events;
    const make = (name: string, points: number, duration: number): RateLimiterAbstract =>
      redis
        ? new RateLimiterRedis({ storeClient: redis, keyPrefix: `${prefix}rl:${name}`, points, duration, rejectIfRedisNotReady: true })
        : new RateLimiterMemory({ keyPrefix: name, points, duration });
    const window = limits.failureWindowSeconds;
    this.#ip = make('ip', limits.ipMaxFailures, window);
    this.#account = make('account', limits.userMaxFailures, window);
    this.#pair = make('pair', 1_000_000, window);
    this.#pairBlock = make('pair-block', 1, 1);
    this.#global = make('global', limits.sprayAlertPerMinute, 60);
  }

  /** Before a login is verified: is this source or this account throttled? */
  check(user: string, ip: string): Promise<Verdict> {
    return redisCall(async () => {
      const [ipRes, blockRes, accountRes] = await Promise.all([
        this.#ip.get(ip),
        this.#pairBlock.get(`${user}|${ip}`),
        this.#account.get(user),
      ]);
      return verdict(this.#limits, { ip: ipRes, pairBlock: blockRes, account: accountRes });
    });
  }

  /** A wrong password (or unknown / inactive user). */
  failed(user: string, ip: string): Promise<void> {
    const pairKey = `${user}|${ip}`;
    return redisCall(async () => {
      const [, , pair] = await Promise.all([
        this.#ip.penalty(ip),
        this.#account.penalty(user),
        this.#pair.penalty(pairKey),
        this.#countGlobal(),
      ]);
      const seconds = blockSeconds(this.#limits, pair.consumedPoints);
      if (seconds > 0) await this.#pairBlock.block(pairKey, seconds);
    });
  }

  /** An attempt refused because the account was throttled: counts against the IP only. */
  throttledAttempt(ip: string): Promise<void> {
    return redisCall(async () => {
      await Promise.all([this.#ip.penalty(ip), this.#countGlobal()]);
    });
  }

  succeeded(user: string, ip: string): Promise<void> {
    return redisCall(async () => {
      await Promise.all([this.#pair.delete(`${user}|${ip}`), this.#pairBlock.delete(`${user}|${ip}`), this.#account.delete(user)]);
    });
  }

  async #countGlobal(): Promise<void> {
    const res = await this.#global.penalty('all');
    // Exactly one request crosses the threshold per minute, across replicas.
    if (res.consumedPoints === this.#limits.sprayAlertPerMinute + 1) {
      this.#events.emit('login.spraying_suspected', { failuresPerMinute: res.consumedPoints });
    }
  }
}
