// oidc-provider storage adapter over ioredis, for every model it stores
// except Client (clients live in Postgres, see clients.ts).
//
// Layout (P = REDIS_KEY_PREFIX):
//   P oidc:<Model>:<sha256(id)>     hash {payload: JSON, consumed?: epoch}
//   P oidc:grant:{<grantId>}        set of the token keys issued under a grant
//   P oidc:account:{<accountId>}    set of the account's grant ids
// Token values are bearer secrets, so a key holds only their SHA-256 and the
// stored payload drops `jti`; a Redis dump or MONITOR never shows a usable
// refresh token.
//
// Redis Cluster: a token key cannot share a slot with its indexes (find()
// knows only the token, not its grant), so a token key, its grant index and
// its account index lie in different hash slots (the braces are hash tags).
// Hence no command names two keys, the consume script touches one key, and a
// write spanning keys goes through execBySlot: one pipeline on a single node,
// one pipeline per key, in parallel, on a Cluster.
import type { ChainableCommander } from 'ioredis';
import { errors } from 'oidc-provider';
import type { SessionRevoker } from '../accounts/lifecycle.ts';
import { sha256 } from '../lib/crypto.ts';
import { checkAcks, execBySlot, redisCall, type RedisClient, type ReplicaWait, type SlotGroup } from '../store/redis.ts';
import type { SecurityEvents } from '../security/events.ts';
import { atBoundary, currentContext, refreshRequest } from './oidc.ts';
import { RefreshReuse } from './refresh-grace.ts';

type Payload = Record<string, unknown> & { grantId?: string; accountId?: string; clientId?: string; consumed?: number };

/**
 * A refresh token presented after it was consumed: the whole grant is
 * revoked. `detectedBy`: `sequential` (found already consumed) or
 * `concurrent` (lost the atomic consume to a parallel request).
 */
export class RefreshTokenReused extends errors.InvalidGrant {
  readonly accountId: string | undefined;
  readonly detectedBy: 'sequential' | 'concurrent';

  constructor(accountId: string | undefined, detectedBy: 'sequential' | 'concurrent') {
    super('refresh token already used');
    this.accountId = accountId;
    this.detectedBy = detectedBy;
  }
}

// Marks a token consumed unless it already is; 0 = gone, 1 = consumed now,
// 2 = it was consumed before (reuse). One round trip, atomic in Redis.
const CONSUME = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'consumed', ARGV[1]) == 1 then return 1 end
return 2`;

const epoch = () => Math.floor(Date.now() / 1000);

type Consume = { idpConsume(key: string, now: number): Promise<number> };

export type TokenStoreOptions = {
  /** Replicas that must hold a write before it counts (REDIS_WAIT_REPLICAS). */
  wait?: ReplicaWait;
  events?: SecurityEvents;
  graceSeconds?: number;
};

export class RedisTokenStore implements SessionRevoker {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly wait: ReplicaWait | undefined;
  readonly reuse: RefreshReuse;

  constructor(redis: RedisClient, prefix: string, opts: TokenStoreOptions = {}) {
    this.redis = redis;
    this.prefix = prefix;
    this.wait = opts.wait?.replicas ? opts.wait : undefined;
    redis.defineCommand('idpConsume', { numberOfKeys: 1, lua: CONSUME });
    this.reuse = new RefreshReuse({
      redis,
      prefix,
      graceSeconds: opts.graceSeconds ?? 0,
      events: opts.events,
      isLive: async (token) => {
        const [json, consumed] = await redis.hmget(this.key('RefreshToken', token), 'payload', 'consumed');
        return !!json && !consumed;
      },
    });
  }

  write(groups: SlotGroup[]): Promise<unknown[]> {
    return execBySlot(this.redis, groups, this.wait);
  }

  /** Runs the consume script on the token's key: 0 = gone, 1 = consumed now, 2 = consumed before. */
  async consume(key: string): Promise<number> {
    if (!this.wait) return (this.redis as RedisClient & Consume).idpConsume(key, epoch());
    // A consumed mark lost in a failover would bring the old token back next
    // to its successor, so it is replicated before the refresh goes on.
    const pipe = this.redis.pipeline() as ChainableCommander & Consume;
    pipe.idpConsume(key, epoch());
    pipe.wait(this.wait.replicas, this.wait.timeoutMs);
    const [consumed, waited] = (await pipe.exec()) ?? [];
    const failed = [consumed, waited].find((r) => !r || r[0]);
    if (failed) throw failed?.[0] ?? new Error('empty pipeline reply');
    const outcome = Number(consumed![1]);
    if (outcome === 1) checkAcks(waited![1], this.wait);
    return outcome;
  }

  key(model: string, id: string): string {
    return `${this.prefix}oidc:${model}:${sha256(id)}`;
  }

  grantKey(grantId: string): string {
    return `${this.prefix}oidc:grant:{${grantId}}`;
  }

  accountKey(accountId: string): string {
    return `${this.prefix}oidc:account:{${accountId}}`;
  }

  /** Deletes every token issued under the grant and the grant itself. */
  revokeGrant(grantId: string): Promise<void> {
    return redisCall(async () => {
      const index = this.grantKey(grantId);
      const keys = await this.redis.smembers(index);
      await this.write([...keys, this.key('Grant', grantId), index].map((k) => (pipe) => pipe.unlink(k)));
    });
  }

  /** Revokes every grant (and so every refresh token) of one account. */
  revokeAccount(accountId: string): Promise<number> {
    return redisCall(async () => {
      const index = this.accountKey(accountId);
      const grants = await this.redis.smembers(index);
      for (const grantId of grants) await this.revokeGrant(grantId);
      await this.write([(pipe) => pipe.unlink(index)]);
      return grants.length;
    });
  }

  adapterFor(model: string): RedisAdapter {
    return new RedisAdapter(this, model);
  }
}

// Adds to an index set and keeps it alive for as long as its longest-lived
// member (NX for a new key, GT to only ever extend).
function indexGroup(key: string, member: string, ttl: number): SlotGroup {
  return (pipe) => {
    pipe.sadd(key, member);
    if (ttl) {
      pipe.expire(key, ttl, 'NX');
      pipe.expire(key, ttl, 'GT');
    }
  };
}

export class RedisAdapter {
  readonly store: RedisTokenStore;
  readonly model: string;

  constructor(store: RedisTokenStore, model: string) {
    this.store = store;
    this.model = model;
  }

  upsert(id: string, payload: Payload, expiresIn: number): Promise<void> {
    const { store, model } = this;
    const key = store.key(model, id);
    const { jti: _jti, ...stored } = payload;
    const groups: SlotGroup[] = [
      (pipe) => {
        pipe.del(key);
        pipe.hset(key, 'payload', JSON.stringify(stored));
        if (expiresIn) pipe.expire(key, expiresIn);
      },
    ];
    if (payload.grantId) groups.push(indexGroup(store.grantKey(payload.grantId), key, expiresIn));
    if (model === 'Grant' && payload.accountId) groups.push(indexGroup(store.accountKey(payload.accountId), id, expiresIn));
    return atBoundary(() => redisCall(() => store.write(groups)).then(() => undefined));
  }

  find(id: string): Promise<Payload | undefined> {
    return atBoundary(async () => {
      const payload = await this.#read(id);
      // A consumed refresh token presented again by its client, to refresh:
      // the grace window may replay the lost response; otherwise the family dies.
      const request = this.model === 'RefreshToken' && payload?.consumed ? refreshRequest(currentContext()) : undefined;
      if (payload && request && request.clientId === payload.clientId) await this.#reused(id, payload, 'sequential');
      return payload;
    });
  }

  async #read(id: string): Promise<Payload | undefined> {
    const [json, consumed] = await redisCall(() => this.store.redis.hmget(this.store.key(this.model, id), 'payload', 'consumed'));
    if (!json) return undefined;
    const payload = JSON.parse(json) as Payload;
    payload.jti = id;
    if (consumed) payload.consumed = Number(consumed);
    return payload;
  }

  async #reused(id: string, payload: Payload, detectedBy: 'sequential' | 'concurrent'): Promise<never> {
    await this.store.reuse.onReuse(id, payload, detectedBy);
    if (payload.grantId) await this.store.revokeGrant(payload.grantId);
    throw new RefreshTokenReused(payload.accountId, detectedBy);
  }

  consume(id: string): Promise<void> {
    return atBoundary(async () => {
      const outcome = await redisCall(() => this.store.consume(this.store.key(this.model, id)));
      if (outcome === 0) throw new errors.InvalidGrant('grant request is invalid');
      if (outcome !== 2) return;
      // Lost a race with another request presenting the same token, or a
      // replay: either way the token was used twice, so the family dies
      // (unless it is the grace window's case: the same client retrying).
      const payload = await this.#read(id);
      if (payload && this.model === 'RefreshToken') await this.#reused(id, payload, 'concurrent');
      if (payload?.grantId) await this.store.revokeGrant(payload.grantId);
      throw new RefreshTokenReused(payload?.accountId, 'concurrent');
    });
  }

  destroy(id: string): Promise<void> {
    const key = this.store.key(this.model, id);
    return atBoundary(() => redisCall(() => this.store.write([(pipe) => pipe.unlink(key)])).then(() => undefined));
  }

  revokeByGrantId(grantId: string): Promise<void> {
    return atBoundary(() => this.store.revokeGrant(grantId));
  }

  // Only used by flows this service does not enable (device code, sessions).
  async findByUserCode(): Promise<undefined> {
    return undefined;
  }

  async findByUid(): Promise<undefined> {
    return undefined;
  }
}
