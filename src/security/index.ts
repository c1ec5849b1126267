// Wiring of the abuse defences into the service (see SECURITY.md).
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { PasswordHasher } from '../accounts/passwords.ts';
import type { Account } from '../accounts/users.ts';
import type { Config } from '../config/index.ts';
import { providerHeaders } from '../http/provider-headers.ts';
import type { Logger } from '../log.ts';
import type { RedisClient } from '../store/redis.ts';
import { refreshGraceMiddleware } from '../tokens/refresh-grace.ts';
import type { RedisTokenStore } from '../tokens/redis-adapter.ts';
import { trustProxyHops } from './client-ip.ts';
import { logSecurityEvents, SecurityEvents } from './events.ts';
import { HashGate } from './hash-gate.ts';
import { loginGuard } from './login-guard.ts';
import { LoginThrottle } from './login-throttle.ts';

export { SecurityEvents } from './events.ts';

export function createSecurityEvents(logger: Logger): SecurityEvents {
  const events = new SecurityEvents();
  logSecurityEvents(events, logger);
  return events;
}

/** The password grant's `authenticate`, with throttling, bounded hashing and events. */
export function guardedAuthentication(opts: {
  config: Config;
  events: SecurityEvents;
  redis: RedisClient | undefined;
  hasher: PasswordHasher;
  /** Shared so that metrics can read how many hashes are in flight. */
  gate?: HashGate;
  authenticate(username: string, password: string, ctx: KoaContextWithOIDC): Promise<Account | null>;
}) {
  const { config, events } = opts;
  return loginGuard({
    throttle: new LoginThrottle(config.abuse, events, opts.redis, config.redisKeyPrefix),
    gate: opts.gate ?? new HashGate(config.abuse.maxConcurrentHashes),
    events,
    authenticate: opts.authenticate,
    spendHash: (password) => opts.hasher.verify(null, password),
  });
}

/** Provider-level middleware and settings: client IP, CORS, no-store, refresh grace. */
export function hardenProvider(provider: Provider, config: Config, tokenStore: RedisTokenStore | undefined): void {
  trustProxyHops(provider as unknown as { proxy: boolean; maxIpsCount: number }, config.trustProxyHops);
  provider.use(providerHeaders(config.corsOrigins));
  provider.use(refreshGraceMiddleware(tokenStore?.reuse));
}
