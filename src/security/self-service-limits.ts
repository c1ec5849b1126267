// Rate limits of the unauthenticated self-service endpoints (POST /register,
// POST /password/forgot): per client IP (IPv6 by prefix, see ./ip-key.ts) and
// per email address, each a fixed budget of requests per window. Every
// request counts, whatever its outcome, and the same for an address that has
// an account and one that has none, so a 429 tells nothing about accounts.
// In Redis (rate-limiter-flexible) so that every replica shares the counters;
// in memory only without Redis (development), like the login throttle. Redis
// down or stalled fails closed: StoreUnavailable('redis') → 503.
import type { Config } from '../config/index.ts';
import { ServiceError } from '../errors.ts';
import type { RedisClient } from '../store/redis.ts';
import type { SecurityEvents } from './events.ts';
import { ipKey } from './ip-key.ts';
import { Limiter } from './limiter.ts';

export type SelfServiceRoute = 'register' | 'forgot';
type Limits = Config['selfService'];

export class SelfServiceLimits {
  readonly #limiters: Record<`${SelfServiceRoute}:${'ip' | 'email'}`, Limiter>;
  readonly #events: SecurityEvents | undefined;
  readonly #ipv6PrefixBits: number;

  constructor(limits: Limits, redis: RedisClient | undefined, prefix: string, events?: SecurityEvents) {
    this.#events = events;
    this.#ipv6PrefixBits = limits.ipv6PrefixBits;
    const make = (name: string, limit: number) => new Limiter({ redis, prefix }, name, { limit, windowSeconds: limits.windowSeconds });
    this.#limiters = {
      'register:ip': make('register-ip', limits.ipMax),
      'register:email': make('register-email', limits.emailMax),
      'forgot:ip': make('forgot-ip', limits.ipMax),
      'forgot:email': make('forgot-email', limits.emailMax),
    };
  }

  /**
   * Counts one request from `ip` for `emailKey` (a hash of the normalized
   * address, never the address). Throws ServiceError rate_limited (429 with
   * Retry-After) when either budget is spent; the IP is counted first, so a
   * source that is already refused does not spend an address's budget.
   */
  async consume(route: SelfServiceRoute, ip: string, emailKey: string): Promise<void> {
    for (const scope of ['ip', 'email'] as const) {
      const key = scope === 'ip' ? ipKey(ip, this.#ipv6PrefixBits) : emailKey;
      const taken = await this.#limiters[`${route}:${scope}`].take(key);
      if (!taken.allowed) {
        const { retryAfterSeconds } = taken;
        this.#events?.emit('self_service.rate_limited', { route, scope, ip, retryAfterSeconds });
        throw new ServiceError('rate_limited', `too many requests${scope === 'ip' ? ' from this address' : ' for this email address'}; try again later`, {
          retryAfter: retryAfterSeconds,
        });
      }
    }
  }
}
