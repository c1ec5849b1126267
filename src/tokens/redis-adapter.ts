// oidc-provider storage adapter over ioredis, for every model it stores
// except Client (clients live in Postgres, see clients.ts).
//
// Layout (P = REDIS_KEY_PREFIX):
//   P oidc:<Model>:<sha256(id)>     hash {payload: JSON, consumed?: epoch}
//   P oidc:grant:{<grantId>}        set of the token keys issued under a grant
//   P oidc:account:{<accountId>}    set of the account's grant ids
// Token values are bearer secrets, so a key holds only their SHA-256 and the
// stored payload drops `jti`; a Redis dump or MONITOR never shows a usable
// refresh token. Every multi-key write touches one key per command, so the
// layout also works on Redis Cluster (the braces are hash tags).
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { errors } from 'oidc-provider';

type Payload = Record<string, unknown> & { grantId?: string; accountId?: string; consumed?: number };

/** 503 on the token endpoint: a token we could not record is never issued. */
export class StoreUnavailable extends errors.OIDCProviderError {
  constructor(cause: unknown) {
    super(503, 'temporarily_unavailable', { cause });
    this.expose = true;
    (this as unknown as { error_description: string }).error_description =
      'the token store is unavailable, try again later';
  }
}

/** A refresh token presented a second time: the whole grant is revoked. */
export class RefreshTokenReused extends errors.InvalidGrant {
  /** For the audit log: whose login family was revoked. */
  readonly accountId: string | undefined;

  constructor(accountId?: string) {
    super('refresh token already used');
    this.accountId = accountId;
  }
}

// Marks a token consumed unless it already is; 0 = gone, 1 = consumed now,
// 2 = it was consumed before (reuse). One round trip, atomic in Redis.
const CONSUME = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'consumed', ARGV[1]) == 1 then return 1 end
return 2`;

const hash = (value: string) => createHash('sha256').update(value).digest('base64url');
const epoch = () => Math.floor(Date.now() / 1000);

export class RedisTokenStore {
  readonly redis: Redis;
  readonly prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
    redis.defineCommand('idpConsume', { numberOfKeys: 1, lua: CONSUME });
  }

  key(model: string, id: string): string {
    return `${this.prefix}oidc:${model}:${hash(id)}`;
  }

  grantKey(grantId: string): string {
    return `${this.prefix}oidc:grant:{${grantId}}`;
  }

  accountKey(accountId: string): string {
    return `${this.prefix}oidc:account:{${accountId}}`;
  }

  /** Deletes every token issued under the grant and the grant itself. */
  async revokeGrant(grantId: string): Promise<void> {
    const index = this.grantKey(grantId);
    const keys = await this.redis.smembers(index);
    const pipe = this.redis.pipeline();
    for (const k of keys) pipe.unlink(k);
    pipe.unlink(this.key('Grant', grantId), index);
    check(await pipe.exec());
  }

  /** Revokes every grant (and so every refresh token) of one account. */
  async revokeAccount(accountId: string): Promise<number> {
    const index = this.accountKey(accountId);
    const grants = await this.redis.smembers(index);
    for (const grantId of grants) await this.revokeGrant(grantId);
    await this.redis.unlink(index);
    return grants.length;
  }

  adapterFor(model: string): RedisAdapter {
    return new RedisAdapter(this, model);
  }
}

function check(results: [Error | null, unknown][] | null): void {
  const failed = results?.find(([err]) => err);
  if (failed) throw failed[0];
}

// Keeps an index key alive for as long as its longest-lived member (NX for a
// new key, GT to only ever extend).
function extend(pipe: ReturnType<Redis['pipeline']>, key: string, ttl: number): void {
  pipe.expire(key, ttl, 'NX');
  pipe.expire(key, ttl, 'GT');
}

export class RedisAdapter {
  readonly store: RedisTokenStore;
  readonly model: string;

  constructor(store: RedisTokenStore, model: string) {
    this.store = store;
    this.model = model;
  }

  async upsert(id: string, payload: Payload, expiresIn: number): Promise<void> {
    const { store, model } = this;
    const key = store.key(model, id);
    const { jti: _jti, ...stored } = payload;
    await guard(async () => {
      const pipe = store.redis.pipeline();
      pipe.del(key);
      pipe.hset(key, 'payload', JSON.stringify(stored));
      if (expiresIn) pipe.expire(key, expiresIn);
      if (payload.grantId) {
        const index = store.grantKey(payload.grantId);
        pipe.sadd(index, key);
        if (expiresIn) extend(pipe, index, expiresIn);
      }
      if (model === 'Grant' && payload.accountId) {
        const index = store.accountKey(payload.accountId);
        pipe.sadd(index, id);
        if (expiresIn) extend(pipe, index, expiresIn);
      }
      check(await pipe.exec());
    });
  }

  async find(id: string): Promise<Payload | undefined> {
    const stored = await guard(() => this.store.redis.hmget(this.store.key(this.model, id), 'payload', 'consumed'));
    const [json, consumed] = stored;
    if (!json) return undefined;
    const payload = JSON.parse(json) as Payload;
    payload.jti = id;
    if (consumed) payload.consumed = Number(consumed);
    return payload;
  }

  async consume(id: string): Promise<void> {
    const key = this.store.key(this.model, id);
    const redis = this.store.redis as Redis & { idpConsume(key: string, now: number): Promise<number> };
    const outcome = await guard(() => redis.idpConsume(key, epoch()));
    if (outcome === 2) {
      // Lost a race with another request presenting the same token, or a
      // replay: either way the token was used twice, so the family dies.
      const payload = await this.find(id);
      if (payload?.grantId) await guard(() => this.store.revokeGrant(payload.grantId as string));
      throw new RefreshTokenReused(payload?.accountId);
    }
    if (outcome === 0) throw new errors.InvalidGrant('grant request is invalid');
  }

  async destroy(id: string): Promise<void> {
    await guard(() => this.store.redis.unlink(this.store.key(this.model, id)));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await guard(() => this.store.revokeGrant(grantId));
  }

  // Only used by flows this service does not enable (device code, sessions).
  async findByUserCode(): Promise<undefined> {
    return undefined;
  }

  async findByUid(): Promise<undefined> {
    return undefined;
  }
}

async function guard<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof errors.OIDCProviderError) throw err;
    throw new StoreUnavailable(err);
  }
}
