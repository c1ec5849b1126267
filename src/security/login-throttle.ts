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
// Usernames are keyed by a hash, so Redis never holds an email address.
import { createHash } from 'node:crypto';
import type { RedisClient } from '../store/redis.ts';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract, type RateLimiterRes } from 'rate-limiter-flexible';
import { normalizeEmail } from '../accounts/users.ts';
import type { Config } from '../config/index.ts';
import type { SecurityEvents } from './events.ts';

export type Verdict =
  | { kind: 'ok' }
  | { kind: 'throttled'; scope: 'account_ip' | 'account'; retryAfterSeconds: number }
  | { kind: 'rate_limited'; retryAfterSeconds: number };

const secondsLeft = (res: RateLimiterRes | null) => Math.max(1, Math.ceil((res?.msBeforeNext ?? 1000) / 1000));

export function usernameKey(username: string): string {
  const normalized = normalizeEmail(username) ?? username.normalize('NFC').trim().toLowerCase();
  return createHash('sha256').update(normalized).digest('base64url').slice(0, 32);
}

export class LoginThrottle {
  readonly #limits: Config['abuse'];
  readonly #events: SecurityEvents;
  readonly #ip: RateLimiterAbstract;
  readonly #account: RateLimiterAbstract;
  readonly #pair: RateLimiterAbstract;
  readonly #pairBlock: RateLimiterAbstract;
  readonly #global: RateLimiterAbstract;

  constructor(limits: Config['abuse'], events: SecurityEvents, redis: RedisClient | undefined, prefix: string) {
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
  async check(username: string, ip: string): Promise<Verdict> {
    const user = usernameKey(username);
    const [ipRes, blockRes, accountRes] = await Promise.all([
      this.#ip.get(ip),
      this.#pairBlock.get(`${user}|${ip}`),
      this.#account.get(user),
    ]);
    if (ipRes && ipRes.consumedPoints >= this.#limits.ipMaxFailures) {
      return { kind: 'rate_limited', retryAfterSeconds: secondsLeft(ipRes) };
    }
    if (blockRes && blockRes.consumedPoints > 1) {
      return { kind: 'throttled', scope: 'account_ip', retryAfterSeconds: secondsLeft(blockRes) };
    }
    if (accountRes && accountRes.consumedPoints >= this.#limits.userMaxFailures) {
      return { kind: 'throttled', scope: 'account', retryAfterSeconds: secondsLeft(accountRes) };
    }
    return { kind: 'ok' };
  }

  /** A wrong password (or unknown / inactive user). */
  async failed(username: string, ip: string): Promise<void> {
    const pairKey = `${usernameKey(username)}|${ip}`;
    const [, , pair] = await Promise.all([
      this.#ip.penalty(ip),
      this.#account.penalty(usernameKey(username)),
      this.#pair.penalty(pairKey),
      this.#countGlobal(),
    ]);
    const beyond = pair.consumedPoints - this.#limits.freeFailures;
    if (beyond > 0) {
      const { blockBaseSeconds: base, blockMaxSeconds: max } = this.#limits;
      await this.#pairBlock.block(pairKey, Math.min(max, base * 2 ** Math.min(beyond - 1, 30)));
    }
  }

  /** An attempt refused because the account was throttled: counts against the IP only. */
  async throttledAttempt(ip: string): Promise<void> {
    await Promise.all([this.#ip.penalty(ip), this.#countGlobal()]);
  }

  async succeeded(username: string, ip: string): Promise<void> {
    const user = usernameKey(username);
    await Promise.all([this.#pair.delete(`${user}|${ip}`), this.#pairBlock.delete(`${user}|${ip}`), this.#account.delete(user)]);
  }

  async #countGlobal(): Promise<void> {
    const res = await this.#global.penalty('all');
    // Exactly one request crosses the threshold per minute, across replicas.
    if (res.consumedPoints === this.#limits.sprayAlertPerMinute + 1) {
      this.#events.emit('login.spraying_suspected', { failuresPerMinute: res.consumedPoints });
    }
  }
}
