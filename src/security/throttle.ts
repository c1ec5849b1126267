// Brute-force and credential-stuffing limits for every password check
// (src/security/limiter.ts counters, shared by all replicas):
//
//   ip       failures from one source (IPv4 address or IPv6 prefix), all
//            usernames: beyond LOGIN_IP_MAX_FAILURES, 429 + Retry-After
//   pair     consecutive failures of one username from one source: after
//            LOGIN_FREE_FAILURES, each failure blocks the pair for
//            base × 2^k seconds (capped); a success resets it
//   account  failures of one username from unfamiliar sources in the window:
//            beyond LOGIN_USER_MAX_FAILURES strangers are throttled; sources
//            the account logged in from recently (familiar) are not
//   global   failures per minute across everything: a spraying signal
//
// Reserve, then verify, then settle. Every counter is incremented BEFORE the
// password is verified and given back when it succeeds, so parallel guesses
// cannot all read "under the limit" and then all verify: at most
// LOGIN_FREE_FAILURES + 1 verifications per pair before the first block
// (the one that crosses it takes the block's slot, atomically), at most one
// per block after that, at most LOGIN_USER_MAX_FAILURES per username from
// strangers. The counters are single Redis keys updated atomically, so the
// bound is the same across replicas (see SECURITY.md for failovers).
// Callers key usernames by a hash, so Redis never holds an email address.
import type { Config } from '../config/index.ts';
import type { SecurityEvents } from './events.ts';
import { FamiliarSources, Limiter, type Count, type LimiterStore } from './limiter.ts';

export type Verdict =
  | { kind: 'ok' }
  | { kind: 'throttled'; scope: 'account_ip' | 'account'; retryAfterSeconds: number }
  | { kind: 'rate_limited'; retryAfterSeconds: number };

type Limits = Config['abuse'];

/**
 * How long the username+source pair is blocked after its `failures`-th
 * consecutive failure: nothing for the free ones, then base × 2^k, capped. Pure.
 */
export function blockSeconds(limits: Pick<Limits, 'freeFailures' | 'blockBaseSeconds' | 'blockMaxSeconds'>, failures: number): number {
  const beyond = failures - limits.freeFailures;
  if (beyond <= 0) return 0;
  return Math.min(limits.blockMaxSeconds, limits.blockBaseSeconds * 2 ** Math.min(beyond - 1, 30));
}

/**
 * The verdict from the reserved counts (each includes this attempt). Pure.
 * `slot`: the count of the pair's block key after this attempt claimed it
 * (1 = this attempt holds it), or undefined when it did not need it.
 */
export function verdict(
  limits: Pick<Limits, 'ipMaxFailures' | 'userMaxFailures'>,
  counts: { ip: Count; blocked: Count | null; slot: Count | undefined; account: Count | undefined },
): Verdict {
  const { ip, blocked, slot, account } = counts;
  if (ip.count > limits.ipMaxFailures) return { kind: 'rate_limited', retryAfterSeconds: ip.retryAfterSeconds };
  if (blocked) return { kind: 'throttled', scope: 'account_ip', retryAfterSeconds: blocked.retryAfterSeconds };
  if (slot && slot.count > 1) return { kind: 'throttled', scope: 'account_ip', retryAfterSeconds: slot.retryAfterSeconds };
  if (account && account.count > limits.userMaxFailures) {
    return { kind: 'throttled', scope: 'account', retryAfterSeconds: account.retryAfterSeconds };
  }
  return { kind: 'ok' };
}

/** A reserved attempt: verify only when the verdict is ok, then report how it went. */
export type Reservation = {
  verdict: Verdict;
  /** The password was right: refunds the reservation, resets the pair, remembers the source. */
  succeeded(): Promise<void>;
  /** The password was wrong (or the user unknown / inactive): the reservation stands. */
  failed(): Promise<void>;
  /** The check could not be made (a store failed): everything reserved is given back. */
  cancelled(): Promise<void>;
};

export class LoginThrottle {
  readonly #limits: Limits;
  readonly #events: SecurityEvents;
  readonly #ip: Limiter;
  readonly #account: Limiter;
  readonly #pair: Limiter;
  readonly #block: Limiter;
  readonly #global: Limiter;
  readonly #familiar: FamiliarSources;

  constructor(limits: Limits, events: SecurityEvents, store: LimiterStore) {
    this.#limits = limits;
    this.#events = events;
    const window = limits.failureWindowSeconds;
    this.#ip = new Limiter(store, 'ip', { limit: limits.ipMaxFailures, windowSeconds: window });
    this.#account = new Limiter(store, 'account', { limit: limits.userMaxFailures, windowSeconds: window });
    this.#pair = new Limiter(store, 'pair', { limit: Number.MAX_SAFE_INTEGER, windowSeconds: window });
    this.#block = new Limiter(store, 'pair-block', { limit: 1, windowSeconds: 1 });
    this.#global = new Limiter(store, 'global', { limit: limits.sprayAlertPerMinute, windowSeconds: 60 });
    this.#familiar = new FamiliarSources(store, 'familiar-login', limits.familiarSourceSeconds);
  }

  /**
   * Reserves one failure on every counter that applies to `user` (a hash)
   * from `source` (ipKey of the IP) and returns the verdict. A refused
   * attempt gives back what it reserved on the pair and account counters;
   * it still counts against the source (and a throttled one, which is
   * answered like a failure, in the spraying signal).
   */
  async reserve(user: string, source: string): Promise<Reservation> {
    const pairKey = `${user}|${source}`;
    const limits = this.#limits;
    const [ip, pair, blocked, familiar] = await Promise.all([
      this.#ip.add(source),
      this.#pair.add(pairKey),
      this.#block.read(pairKey),
      this.#familiar.has(user, source),
    ]);
    let slot: Count | undefined;
    let account: Count | undefined;
    if (ip.count <= limits.ipMaxFailures && !blocked) {
      // Beyond the free failures each attempt needs the block's slot: the
      // first to claim it verifies and its failure is the block; parallel
      // attempts find it taken. Strangers also reserve on the account.
      const needsSlot = pair.count > limits.freeFailures;
      [slot, account] = await Promise.all([
        needsSlot ? this.#block.add(pairKey, 1, blockSeconds(limits, pair.count)) : undefined,
        familiar ? undefined : this.#account.add(user),
      ]);
    }
    const result = verdict(limits, { ip, blocked, slot, account });
    // Gives back the pair and account reservations, and the block slot if this attempt holds it.
    const release = async () => {
      await Promise.all([
        this.#pair.refund(pairKey),
        account ? this.#account.refund(user) : undefined,
        slot?.count === 1 ? this.#block.clear(pairKey) : undefined,
      ]);
    };
    if (result.kind !== 'ok') {
      await Promise.all([release(), result.kind === 'throttled' ? this.#countGlobal() : undefined]);
      const settled = async () => {};
      return { verdict: result, succeeded: settled, failed: settled, cancelled: settled };
    }
    return {
      verdict: result,
      cancelled: async () => {
        await Promise.all([release(), this.#ip.refund(source)]);
      },
      succeeded: async () => {
        await Promise.all([
          this.#ip.refund(source),
          this.#pair.clear(pairKey),
          this.#block.clear(pairKey),
          account ? this.#account.refund(user) : undefined,
          this.#familiar.remember(user, source),
        ]);
      },
      failed: () => this.#countGlobal(),
    };
  }

  async #countGlobal(): Promise<void> {
    const { count } = await this.#global.add('all');
    // Exactly one request crosses the threshold per minute, across replicas.
    if (count === this.#limits.sprayAlertPerMinute + 1) {
      this.#events.emit('login.spraying_suspected', { failuresPerMinute: count });
    }
  }
}
