// Limits on client authentication (the token, introspection and revocation
// endpoints), so that guessing client secrets is slow and visible:
//
//   ip      failures from one source (IPv4 address or IPv6 prefix), any
//           client: beyond CLIENT_AUTH_IP_MAX_FAILURES in the window, 429
//   client  failures for one client id from unfamiliar sources: beyond
//           CLIENT_AUTH_CLIENT_MAX_FAILURES, strangers get 429 for that
//           client; sources it authenticated from recently still get in, so
//           a botnet guessing a gateway's secret cannot lock the gateway out
//
// Both are checked before oidc-provider authenticates the client and counted
// after it failed. Unlike password logins this is check-then-count: a
// successful authentication (every refresh) then costs one read and no
// write. Parallel requests can overshoot a limit by at most the number in
// flight, which is harmless here: client secrets are 256 random bits, the
// limit is about volume and visibility, not the odds of a guess.
import type { Config } from '../config/index.ts';
import { ipKey } from './ip-key.ts';
import { FamiliarSources, Limiter, type LimiterStore } from './limiter.ts';

export type ClientAuthVerdict = { kind: 'ok' } | { kind: 'rate_limited'; scope: 'ip' | 'client'; retryAfterSeconds: number };

type Limits = Config['abuse']['clientAuth'];

// A source is re-remembered at most this often per process (a successful
// authentication would otherwise write to Redis on every request).
const REMEMBER_EVERY_MS = 3_600_000;
const REMEMBERED_MAX = 10_000;

export class ClientAuthThrottle {
  readonly #ip: Limiter;
  readonly #client: Limiter;
  readonly #familiar: FamiliarSources;
  readonly #ipv6PrefixBits: number;
  readonly #remembered = new Map<string, number>();

  constructor(limits: Limits, store: LimiterStore, opts: { ipv6PrefixBits: number; familiarSourceSeconds: number }) {
    this.#ip = new Limiter(store, 'client-auth-ip', { limit: limits.ipMaxFailures, windowSeconds: limits.windowSeconds });
    this.#client = new Limiter(store, 'client-auth-client', { limit: limits.clientMaxFailures, windowSeconds: limits.windowSeconds });
    this.#familiar = new FamiliarSources(store, 'familiar-client', opts.familiarSourceSeconds);
    this.#ipv6PrefixBits = opts.ipv6PrefixBits;
  }

  /** Before authenticating `clientId` (as claimed; null when none or malformed) from `ip`. */
  async check(clientId: string | null, ip: string): Promise<ClientAuthVerdict> {
    const source = ipKey(ip, this.#ipv6PrefixBits);
    const [bySource, byClient] = await Promise.all([this.#ip.read(source), clientId ? this.#client.read(clientId) : null]);
    if (bySource && bySource.count >= this.#ip.limit) return { kind: 'rate_limited', scope: 'ip', retryAfterSeconds: bySource.retryAfterSeconds };
    if (clientId && byClient && byClient.count >= this.#client.limit && !(await this.#familiar.has(clientId, source))) {
      return { kind: 'rate_limited', scope: 'client', retryAfterSeconds: byClient.retryAfterSeconds };
    }
    return { kind: 'ok' };
  }

  async failed(clientId: string | null, ip: string): Promise<void> {
    const source = ipKey(ip, this.#ipv6PrefixBits);
    await Promise.all([this.#ip.add(source), clientId ? this.#client.add(clientId) : undefined]);
  }

  async succeeded(clientId: string, ip: string): Promise<void> {
    const source = ipKey(ip, this.#ipv6PrefixBits);
    const key = `${clientId}|${source}`;
    const now = Date.now();
    if ((this.#remembered.get(key) ?? 0) > now) return;
    if (this.#remembered.size >= REMEMBERED_MAX) this.#remembered.clear();
    this.#remembered.set(key, now + REMEMBER_EVERY_MS);
    await this.#familiar.remember(clientId, source);
  }
}
