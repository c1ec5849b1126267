// The password grant's authentication step with its defences around it:
// source IP, throttling verdict, bounded hashing, counters, and one security
// event per attempt. A throttled account answers exactly like a wrong password
// (and spends the same one hash verification), so throttling is no oracle.
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { Account } from '../accounts/users.ts';
import { guard } from '../tokens/redis-adapter.ts';
import { endUserIp } from './client-ip.ts';
import type { SecurityEvents } from './events.ts';
import { LoginsOverloaded, type HashGate } from './hash-gate.ts';
import type { LoginThrottle } from './login-throttle.ts';

export class TooManyFailures extends errors.OIDCProviderError {
  constructor() {
    super(429, 'temporarily_unavailable');
    this.expose = true;
    (this as unknown as { error_description: string }).error_description = 'too many failed logins from this address';
  }
}

export type LoginGuardDeps = {
  throttle: LoginThrottle;
  gate: HashGate;
  events: SecurityEvents;
  /** ctx lets the accounts module audit the attempt (client, IP, request id). */
  authenticate(username: string, password: string, ctx: KoaContextWithOIDC): Promise<Account | null>;
  /** One dummy verification, the cost of a real one. */
  spendHash(password: string): Promise<unknown>;
};

export type LoginClient = { clientId: string; trusted_gateway?: unknown };

export function loginGuard(deps: LoginGuardDeps) {
  const { throttle, gate, events } = deps;
  return async function guardedAuthenticate(
    ctx: KoaContextWithOIDC,
    client: LoginClient,
    username: string,
    password: string,
  ): Promise<Account | null> {
    const source = { clientId: client.clientId, ip: endUserIp(ctx, client, events) };
    try {
      const verdict = await guard(() => throttle.check(username, source.ip));
      if (verdict.kind === 'rate_limited') {
        events.emit('login.rate_limited', { ...source, retryAfterSeconds: verdict.retryAfterSeconds });
        ctx.set('Retry-After', String(verdict.retryAfterSeconds));
        throw new TooManyFailures();
      }
      if (verdict.kind === 'throttled') {
        await gate.run(() => deps.spendHash(password));
        await guard(() => throttle.throttledAttempt(source.ip));
        events.emit('login.throttled', { ...source, scope: verdict.scope, retryAfterSeconds: verdict.retryAfterSeconds });
        return null;
      }
      const account = await gate.run(() => guard(() => deps.authenticate(username, password, ctx)));
      if (!account) {
        await guard(() => throttle.failed(username, source.ip));
        events.emit('login.failed', source);
        return null;
      }
      await guard(() => throttle.succeeded(username, source.ip));
      events.emit('login.succeeded', { ...source, accountId: account.accountId });
      return account;
    } catch (err) {
      if (err instanceof LoginsOverloaded) events.emit('login.shed', source);
      else if (!(err instanceof TooManyFailures)) events.emit('login.unavailable', source);
      throw err;
    }
  };
}
