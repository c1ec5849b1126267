// Short-lived tickets between a correct password and the second factor: the
// password grant's `mfa_token` and the challenge endpoint's `auth_session`.
// Stored in Redis under the SHA-256 of the value (the value itself is only
// ever in the client's hands), expiring on their own (≤ 5 minutes). A ticket
// is bound to the client and the account it was issued for, and is consumed
// by one atomic DEL once the login it leads to is saved: of two requests
// that both passed the second factor, only the one whose DEL removed it
// answers. The DEL carries a deadline (half the command timeout, as refresh
// rotation's script does): one that sat in a stalled Redis until after the
// service answered 503 does nothing, so the owner's retry still finds the
// ticket. Each ticket allows a few
// second-factor attempts (counted before the check, so parallel guesses are
// bounded too); beyond that it is deleted.
//
// Without Redis (development) they live in this process.
import { StoreUnavailable } from '../errors.ts';
import { randomToken, sha256 } from '../lib/crypto.ts';
import { redisCall, type RedisClient } from '../store/redis.ts';

export const TICKET_TTL_SECONDS = 300;
/** Second-factor attempts one ticket allows (then it is gone; the login guard's limits apply as well). */
export const TICKET_MAX_ATTEMPTS = 5;

export type Ticket = {
  kind: 'mfa_token' | 'auth_session';
  accountId: string;
  clientId: string;
  /** The account's session generation when the password was checked. */
  generation: number;
  /** 'challenge': the account has a second factor to present; 'enroll': it must enroll one first. */
  purpose: 'challenge' | 'enroll';
  resource?: string;
  scope: string;
  /** auth_session: the PKCE challenge of the first request. */
  codeChallenge?: string;
  /** The DPoP key of the password step, when it sent a proof: the ticket is redeemed only with it. */
  dpopJkt?: string;
};

type Store = {
  set(key: string, value: string, seconds: number): Promise<void>;
  get(key: string): Promise<string | null>;
  del(key: string): Promise<boolean>;
  /** DEL, run only if Redis gets to it before `deadline` (epoch ms): 'late' otherwise. */
  delBefore(key: string, deadline: number): Promise<boolean | 'late'>;
  incr(key: string, seconds: number): Promise<number>;
};

/** KEYS[1]: the ticket; ARGV[1]: the deadline (epoch ms). 1 deleted, 0 absent, -1 too late (nothing done). */
const DEL_BEFORE = `
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[1]) then return -1 end
return redis.call('DEL', KEYS[1])`;

function redisStore(redis: RedisClient): Store {
  return {
    set: (key, value, seconds) => redisCall(async () => void (await redis.set(key, value, 'EX', seconds))),
    get: (key) => redisCall(() => redis.get(key)),
    del: (key) => redisCall(async () => (await redis.del(key)) === 1),
    delBefore: (key, deadline) =>
      redisCall(async () => {
        const n = (await redis.eval(DEL_BEFORE, 1, key, String(deadline))) as number;
        return n < 0 ? 'late' : n === 1;
      }),
    incr: (key, seconds) =>
      redisCall(async () => {
        const [[, n]] = (await redis.multi().incr(key).expire(key, seconds).exec()) as [[unknown, number]];
        return n;
      }),
  };
}

function memoryStore(): Store {
  const map = new Map<string, { value: string; until: number }>();
  const live = (key: string) => {
    const e = map.get(key);
    if (e && e.until <= Date.now()) map.delete(key);
    return map.get(key);
  };
  return {
    set: async (key, value, seconds) => void map.set(key, { value, until: Date.now() + seconds * 1000 }),
    get: async (key) => live(key)?.value ?? null,
    del: async (key) => !!live(key) && map.delete(key),
    delBefore: async (key) => !!live(key) && map.delete(key),
    incr: async (key, seconds) => {
      const n = Number(live(key)?.value ?? 0) + 1;
      map.set(key, { value: String(n), until: live(key)?.until ?? Date.now() + seconds * 1000 });
      return n;
    },
  };
}

export type AttemptVerdict = 'ok' | 'exhausted';

export class MfaTickets {
  readonly #store: Store;
  readonly #prefix: string;
  readonly #deadlineMs: number;

  /** `commandTimeoutMs`: REDIS_COMMAND_TIMEOUT_MS; a consume's deadline is half of it. */
  constructor(redis: RedisClient | undefined, prefix: string, commandTimeoutMs = 1000) {
    this.#store = redis ? redisStore(redis) : memoryStore();
    this.#prefix = `${prefix}mfa:`;
    this.#deadlineMs = Math.floor(commandTimeoutMs / 2);
  }

  #key(value: string): string {
    return this.#prefix + sha256(value);
  }

  async issue(ticket: Ticket): Promise<string> {
    const value = randomToken(32);
    await this.#store.set(this.#key(value), JSON.stringify(ticket), TICKET_TTL_SECONDS);
    return value;
  }

  /** The ticket of this kind, if it is alive (undefined for anything malformed, expired or consumed). */
  async find(value: string, kind: Ticket['kind']): Promise<Ticket | undefined> {
    if (!/^[\w-]{43}$/.test(value)) return undefined;
    const raw = await this.#store.get(this.#key(value));
    if (!raw) return undefined;
    const ticket = JSON.parse(raw) as Ticket;
    return ticket.kind === kind ? ticket : undefined;
  }

  /** Counts one second-factor attempt; beyond TICKET_MAX_ATTEMPTS the ticket is deleted. */
  async attempt(value: string): Promise<AttemptVerdict> {
    const key = this.#key(value);
    const n = await this.#store.incr(`${key}:n`, TICKET_TTL_SECONDS);
    if (n <= TICKET_MAX_ATTEMPTS) return 'ok';
    await this.#store.del(key);
    return 'exhausted';
  }

  /**
   * Single use: true for exactly one caller. Call it once what the ticket
   * leads to is saved. Throws StoreUnavailable when Redis ran it too late
   * (nothing consumed) or did not answer.
   */
  async consume(value: string): Promise<boolean> {
    const done = await this.#store.delBefore(this.#key(value), Date.now() + this.#deadlineMs);
    if (done === 'late') throw new StoreUnavailable('redis', new Error('ticket consume deadline passed'));
    return done;
  }
}
