// oidc-provider storage adapter over ioredis, for every model it stores
// except Client (clients live in Postgres, see client-adapter.ts).
//
// Layout (P = REDIS_KEY_PREFIX):
//   P oidc:grant:{G}     one login: its Grant, live refresh token and
//                        tombstones, as one string (src/tokens/login-record.ts)
//   P oidc:account:{A}   sorted set of the account's grant ids, scored by expiry
//   P oidc:client:{C}    sorted set of the client's grant ids, scored the same way
//   P oidc:<Model>:<sha256(id)>   hash {payload} for any other model
// The braces are Redis Cluster hash tags. Everything rotation touches is in
// one key, so one Lua script changes it atomically on a single node and on a
// Cluster alike; the indexes are trimmed on write and on revoke, and are a
// clean-up aid only. A refresh token's value is 43 random characters (256
// bits) followed by its grant id, so its login is known from the value; the
// lookup is by the SHA-256 of the whole value, and Redis never holds a
// usable token.
//
// Rotation is one script (ROTATE): the presented token becomes a tombstone
// and its successor is stored in the same step, or nothing happens. The
// consume oidc-provider asks for first is deferred to the successor's save
// within the same request. The script carries a deadline shorter than the
// client-side command timeout and does nothing once it has passed, so a
// command that sat in a stalled Redis until after the service answered 503
// cannot consume the token behind the client's back: the client's retry then
// finds its token still live. Revocation truth is in Postgres
// (src/tokens/sessions.ts); deleting logins here is clean-up.
import { Cluster, type ChainableCommander } from 'ioredis';
import { errors } from 'oidc-provider';
import type { SessionCleanup } from '../accounts/lifecycle.ts';
import type { ClientSessionCleanup } from '../clients/index.ts';
import { StoreUnavailable } from '../errors.ts';
import { randomToken, SealError, sha256 } from '../lib/crypto.ts';
import type { SecurityEvents } from '../security/events.ts';
import { checkAcks, execBySlot, redisCall, type RedisClient, type ReplicaWait, type SlotGroup } from '../store/redis.ts';
import { atBoundary, currentContext, refreshRequest, type OidcContext } from './oidc.ts';
import { formatLogin, graceConsumedAt, ISSUE, parseLogin, REVOKE, ROTATE, tombstoneOf, UNDO } from './login-record.ts';
import { answerWithSuccessor, openSuccessor, sealSuccessor } from './refresh-grace.ts';

type Payload = Record<string, unknown> & {
  grantId?: string;
  accountId?: string;
  clientId?: string;
  consumed?: number;
  exp?: number;
  iat?: number;
};

/**
 * A refresh token presented after it was consumed: the whole grant is
 * revoked. `detectedBy`: `sequential` (found already consumed) or
 * `concurrent` (lost the atomic rotation to a parallel request).
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

// randomToken() (32 bytes, base64url: 43 characters), then an oidc-provider id.
const REFRESH_TOKEN_VALUE = /^[A-Za-z0-9_-]{43}([A-Za-z0-9_-]{16,128})$/;

/** A new refresh token value for a grant: 256 random bits, then the grant id (its hash tag). */
export function refreshTokenValue(grantId: string | undefined): string {
  return randomToken() + (grantId ?? '');
}

/** The grant a refresh token value names, if it is well formed. */
export function grantIdOf(value: string): string | undefined {
  return REFRESH_TOKEN_VALUE.exec(value)?.[1];
}

type Scripts = {
  idpRotate(key: string, ...args: (string | number)[]): Promise<string[]>;
  idpUndo(key: string, ...args: (string | number)[]): Promise<number>;
};
type PipelineScripts = {
  idpRotate(key: string, ...args: (string | number)[]): ChainableCommander;
  idpRevoke(key: string): ChainableCommander;
  idpIssue(key: string, ...args: (string | number)[]): ChainableCommander;
};

const epoch = () => Math.floor(Date.now() / 1000);

// Far longer than a cached client row lives (CLIENT_CACHE_MAX_AGE_MS): a
// version that expired cannot bring back an entry cached under "no version".
const CLIENT_VERSION_TTL_SECONDS = 86_400;

export type TokenStoreOptions = {
  /** Replicas that must hold a write before it counts (REDIS_WAIT_REPLICAS). */
  wait?: ReplicaWait;
  events?: SecurityEvents;
  /** REFRESH_REUSE_GRACE_SECONDS. */
  graceSeconds?: number;
  /** Seconds a login without a refresh token is kept: as long as its access token. */
  accessTokenTtl?: number;
  /** REDIS_COMMAND_TIMEOUT_MS: a rotation's deadline is half of it. */
  commandTimeoutMs?: number;
};

/** One login as read for a presented refresh token. */
type Family = { grantId: string; grant: Payload | undefined; liveHash: string; live: string; grace: string; tombstones: string };

// What one request knows: the family it read, and the consume oidc-provider
// asked for, to be carried out atomically with the successor's save.
type RequestState = {
  /** The login read started before client authentication (RedisTokenStore.prefetch), for one lookup. */
  prefetched?: { grantId: string; read: Promise<Family | undefined> };
  family?: Family;
  pending?: { grantId: string; presented: string; hash: string; stored: string; exp: number };
};
const requests = new WeakMap<object, RequestState>();

function stateOf(ctx: object | undefined): RequestState | undefined {
  if (!ctx) return undefined;
  let state = requests.get(ctx);
  if (!state) requests.set(ctx, (state = {}));
  return state;
}

const parse = (json: string | null | undefined): Payload | undefined => (json ? (JSON.parse(json) as Payload) : undefined);

// A refresh token's stored form: what the grant says already is left out.
const FROM_GRANT = ['jti', 'kind', 'grantId', 'accountId', 'clientId', 'consumed'];
function storedRefreshToken(payload: Payload): string {
  return JSON.stringify(Object.fromEntries(Object.entries(payload).filter(([k]) => !FROM_GRANT.includes(k))));
}

export class RedisTokenStore implements SessionCleanup, ClientSessionCleanup {
  readonly redis: RedisClient & Scripts;
  readonly prefix: string;
  readonly wait: ReplicaWait | undefined;
  readonly events: SecurityEvents | undefined;
  readonly graceMs: number;
  readonly bareGrantTtl: number;
  readonly deadlineMs: number;

  constructor(redis: RedisClient, prefix: string, opts: TokenStoreOptions = {}) {
    this.redis = redis as RedisClient & Scripts;
    this.prefix = prefix;
    this.wait = opts.wait?.replicas ? opts.wait : undefined;
    this.events = opts.events;
    this.graceMs = (opts.graceSeconds ?? 0) * 1000;
    this.bareGrantTtl = opts.accessTokenTtl ?? 900;
    this.deadlineMs = Math.floor((opts.commandTimeoutMs ?? 1000) / 2);
    redis.defineCommand('idpRotate', { numberOfKeys: 1, lua: ROTATE });
    redis.defineCommand('idpUndo', { numberOfKeys: 1, lua: UNDO });
    redis.defineCommand('idpIssue', { numberOfKeys: 1, lua: ISSUE });
    redis.defineCommand('idpRevoke', { numberOfKeys: 1, lua: REVOKE });
  }

  key(model: string, id: string): string {
    return `${this.prefix}oidc:${model}:${sha256(id)}`;
  }

  familyKey(grantId: string): string {
    return `${this.prefix}oidc:grant:{${grantId}}`;
  }

  accountKey(accountId: string): string {
    return `${this.prefix}oidc:account:{${accountId}}`;
  }

  clientKey(clientId: string): string {
    return `${this.prefix}oidc:client:{${clientId}}`;
  }

  /** The version of a client's row for every replica's cache (src/tokens/client-adapter.ts): random, replaced on each change. */
  clientVersionKey(clientId: string): string {
    return `${this.prefix}client-version:{${clientId}}`;
  }

  clientVersion(clientId: string): Promise<string | null> {
    return redisCall(() => this.redis.get(this.clientVersionKey(clientId)));
  }

  clientChanged(clientId: string): Promise<void> {
    return redisCall(async () => {
      await this.write([(pipe) => void pipe.set(this.clientVersionKey(clientId), randomToken(), 'EX', CLIENT_VERSION_TTL_SECONDS)]);
    });
  }

  write(groups: SlotGroup[]): Promise<unknown[]> {
    return execBySlot(this.redis, groups, this.wait);
  }

  /** A login as stored (for tests and the memory figure): undefined when gone. */
  async readLogin(grantId: string) {
    return parseLogin(await this.redis.get(this.familyKey(grantId)));
  }

  async readFamily(grantId: string): Promise<Family | undefined> {
    const record = await this.readLogin(grantId);
    return record && { grantId, ...record, grant: parse(record.grant) };
  }

  /**
   * Starts reading the login a presented token names (a refresh token, or a
   * token to introspect) while the request is still at client
   * authentication, so both go out in one network write and the lookup does
   * not wait for another round trip. Only a read: what it found is used, by
   * this request only, once authentication has passed. Resolves to the
   * login's grant, or undefined (no such login, malformed token, Redis
   * failed: the lookup then reports the failure).
   */
  prefetch(ctx: object, value: string): Promise<Payload | undefined> {
    const grantId = grantIdOf(value);
    const state = stateOf(ctx);
    if (!grantId || !state) return Promise.resolve(undefined);
    const read = redisCall(() => this.readFamily(grantId));
    state.prefetched = { grantId, read };
    return read.then((family) => family?.grant, () => undefined);
  }

  // Index upkeep for a login: add (trimming what expired), or only push the
  // score of a member still there (XX GT) as its family lives longer.
  #indexGroups(grant: Payload, grantId: string, expiresAt: number, add: boolean): SlotGroup[] {
    const { accountId, clientId } = grant;
    const groups: SlotGroup[] = [];
    const upkeep = (key: string, member: string): SlotGroup => (pipe) => {
      if (add) {
        pipe.zadd(key, expiresAt, member);
        pipe.zremrangebyscore(key, '-inf', epoch());
        pipe.expireat(key, expiresAt, 'NX'); // a new index
      } else {
        pipe.zadd(key, 'XX', 'GT', expiresAt, member);
      }
      pipe.expireat(key, expiresAt, 'GT');
    };
    if (typeof accountId === 'string') groups.push(upkeep(this.accountKey(accountId), grantId));
    if (typeof clientId === 'string') groups.push(upkeep(this.clientKey(clientId), grantId));
    return groups;
  }

  /** A new login's Grant. Without a refresh token it lives as long as its access token. */
  saveGrant(grantId: string, payload: Payload, expiresIn: number): Promise<void> {
    const ttl = Math.max(1, Math.min(expiresIn || this.bareGrantTtl, this.bareGrantTtl));
    const expiresAt = epoch() + ttl;
    const { jti: _jti, ...stored } = payload;
    const family = this.familyKey(grantId);
    return redisCall(async () => {
      const record = formatLogin({ liveHash: '', grace: '', tombstones: '', live: '', grant: JSON.stringify(stored) });
      await this.write([(pipe) => void pipe.set(family, record, 'EXAT', expiresAt), ...this.#indexGroups(payload, grantId, expiresAt, true)]);
    });
  }

  /** The first refresh token of a login: the family now lives as long as it does. */
  async saveFirstRefreshToken(grantId: string, hash: string, payload: Payload): Promise<void> {
    const expiresAt = payload.exp ?? epoch() + this.bareGrantTtl;
    const family = this.familyKey(grantId);
    const [issued] = await redisCall(() =>
      this.write([
        (pipe) => void (pipe as ChainableCommander & PipelineScripts).idpIssue(family, hash, storedRefreshToken(payload), expiresAt),
        ...this.#indexGroups(payload, grantId, expiresAt, false),
      ]),
    );
    if (issued !== 1) throw new errors.InvalidGrant('grant request is invalid'); // the login is gone
  }

  /**
   * The atomic rotation (see ROTATE). The index upkeep goes out in parallel
   * (another hash slot); an index is a clean-up aid, so its failure does not
   * fail the refresh.
   */
  async rotate(
    pending: NonNullable<RequestState['pending']>,
    successor: { hash: string; payload: Payload; sealed: string },
  ): Promise<string[]> {
    const family = this.familyKey(pending.grantId);
    const expiresAt = successor.payload.exp ?? epoch() + this.bareGrantTtl;
    const args = [
      pending.hash,
      successor.hash,
      storedRefreshToken(successor.payload),
      expiresAt,
      Date.now() + this.deadlineMs,
      this.graceMs,
      successor.sealed,
      pending.exp,
    ];
    const indexGroups = this.#indexGroups(successor.payload, pending.grantId, expiresAt, false);
    if (!this.wait && !(this.redis instanceof Cluster)) {
      // One node: the rotation and the index upkeep in one pipeline (one
      // round trip); only the rotation's reply decides.
      return redisCall(async () => {
        const pipe = this.redis.pipeline() as ChainableCommander & PipelineScripts;
        pipe.idpRotate(family, ...args);
        for (const group of indexGroups) group(pipe);
        const [rotated] = (await pipe.exec()) ?? [];
        if (!rotated || rotated[0]) throw rotated?.[0] ?? new Error('empty pipeline reply');
        return rotated[1] as string[];
      });
    }
    const indexes = this.write(indexGroups).catch(() => undefined);
    const result = await redisCall(async () => {
      if (!this.wait) return this.redis.idpRotate(family, ...args);
      // A rotation lost in a failover would bring the old token back next to
      // its successor: it is replicated before the refresh goes on, or undone.
      const pipe = this.redis.pipeline() as ChainableCommander & PipelineScripts;
      pipe.idpRotate(family, ...args);
      pipe.wait(this.wait.replicas, this.wait.timeoutMs);
      const [rotated, waited] = (await pipe.exec()) ?? [];
      const failed = [rotated, waited].find((r) => !r || r[0]);
      if (failed) throw failed?.[0] ?? new Error('empty pipeline reply');
      const out = rotated![1] as string[];
      if (out[0] === 'ok') {
        try {
          checkAcks(waited![1], this.wait);
        } catch (err) {
          await this.redis.idpUndo(family, pending.hash, successor.hash, pending.stored).catch(() => undefined);
          throw err;
        }
      }
      return out;
    });
    await indexes;
    return result;
  }

  /** Deletes one login (family and index entries); idempotent. */
  revokeFamily(grantId: string): Promise<void> {
    return redisCall(async () => {
      const [json] = await this.write([(pipe) => void (pipe as ChainableCommander & PipelineScripts).idpRevoke(this.familyKey(grantId))]);
      const grant = parse(json as string);
      if (grant) await this.unindex(grantId, grant);
    });
  }

  /** Removes a deleted login from its account's and client's index. */
  unindex(grantId: string, grant: Payload): Promise<void> {
    const { accountId, clientId } = grant;
    const groups: SlotGroup[] = [];
    if (typeof accountId === 'string') groups.push((pipe) => pipe.zrem(this.accountKey(accountId), grantId));
    if (typeof clientId === 'string') groups.push((pipe) => pipe.zrem(this.clientKey(clientId), grantId));
    return redisCall(async () => {
      if (groups.length) await this.write(groups);
    });
  }

  // Deletes the logins an index lists and removes exactly the members it
  // read (a login saved meanwhile stays indexed), from this index and from
  // the other one each deleted login names.
  async #purge(index: string, other: (grant: Payload) => string | undefined): Promise<number> {
    return redisCall(async () => {
      const members = await this.redis.zrange(index, 0, -1);
      if (!members.length) return 0;
      const grants = await this.write(
        members.map((grantId) => (pipe) => void (pipe as ChainableCommander & PipelineScripts).idpRevoke(this.familyKey(grantId))),
      );
      const groups: SlotGroup[] = [(pipe) => void pipe.zrem(index, ...members)];
      members.forEach((grantId, i) => {
        const otherIndex = other(parse(grants[i] as string) ?? {});
        if (otherIndex) groups.push((pipe) => void pipe.zrem(otherIndex, grantId));
      });
      await this.write(groups);
      return members.length;
    });
  }

  /** Clean-up after an account's sessions were revoked in Postgres: deletes its logins. */
  purgeAccount(accountId: string): Promise<number> {
    return this.#purge(this.accountKey(accountId), (g) => (typeof g.clientId === 'string' ? this.clientKey(g.clientId) : undefined));
  }

  /** Clean-up after a client was deleted or its sessions revoked: deletes its logins. */
  purgeClient(clientId: string): Promise<number> {
    return this.#purge(this.clientKey(clientId), (g) => (typeof g.accountId === 'string' ? this.accountKey(g.accountId) : undefined));
  }

  adapterFor(model: string): RedisAdapter {
    return new RedisAdapter(this, model);
  }
}

// Access tokens (JWT) and client credentials tokens are never stored.
const NEVER_STORED = new Set(['AccessToken', 'ClientCredentials']);

export class RedisAdapter {
  readonly store: RedisTokenStore;
  readonly model: string;

  constructor(store: RedisTokenStore, model: string) {
    this.store = store;
    this.model = model;
  }

  upsert(id: string, payload: Payload, expiresIn: number): Promise<void> {
    return atBoundary(async () => {
      const { store } = this;
      if (this.model === 'Grant') return store.saveGrant(id, payload, expiresIn);
      if (this.model === 'RefreshToken') return this.#saveRefreshToken(id, payload);
      if (NEVER_STORED.has(this.model)) return;
      const key = store.key(this.model, id);
      const { jti: _jti, ...stored } = payload;
      await redisCall(() =>
        store.write([
          (pipe) => {
            pipe.del(key);
            pipe.hset(key, 'payload', JSON.stringify(stored));
            if (expiresIn) pipe.expire(key, expiresIn);
          },
        ]),
      );
    });
  }

  async #saveRefreshToken(value: string, payload: Payload): Promise<void> {
    const { store } = this;
    const grantId = payload.grantId;
    if (!grantId || grantIdOf(value) !== grantId) throw new Error('a refresh token value must carry its grant id');
    const ctx = currentContext();
    const state = stateOf(ctx);
    const pending = state?.pending?.grantId === grantId ? state.pending : undefined;
    if (!pending) return store.saveFirstRefreshToken(grantId, sha256(value), payload);

    const sealed = store.graceMs && payload.clientId ? sealSuccessor(pending.presented, String(payload.clientId), value) : '';
    const [outcome, detail] = await store.rotate(pending, { hash: sha256(value), payload, sealed });
    state!.pending = undefined;
    if (outcome === 'ok') return;
    // Redis ran the script after its deadline (it was stalled): nothing changed.
    if (outcome === 'late') throw new StoreUnavailable('redis', new Error('rotation deadline passed'));
    if (outcome === 'grace' && detail && payload.clientId) {
      try {
        answerWithSuccessor(ctx!, openSuccessor(pending.presented, String(payload.clientId), detail));
        store.events?.emit('refresh.grace_replay', { clientId: String(payload.clientId), grantId });
        return;
      } catch (err) {
        if (!(err instanceof SealError)) throw err;
      }
    }
    if (outcome === 'gone') throw new errors.InvalidGrant('grant request is invalid');
    // Lost the rotation to a request that presented the same token, or it
    // was used before: either way it was used twice, so the family dies
    // (ROTATE deleted it already; a grace record that did not open too).
    const grant = parse(detail) ?? state?.family?.grant;
    if (outcome !== 'reused') await store.revokeFamily(grantId);
    else if (grant) await store.unindex(grantId, grant).catch(() => undefined);
    this.#emitReuse(grantId, grant, 'concurrent');
    throw new RefreshTokenReused(grant?.accountId, 'concurrent');
  }

  find(id: string): Promise<Payload | undefined> {
    return atBoundary(async () => {
      if (NEVER_STORED.has(this.model)) return undefined;
      if (this.model === 'RefreshToken') return this.#findRefreshToken(id);
      if (this.model === 'Grant') return this.#findGrant(id);
      const [json, consumed] = await redisCall(() => this.store.redis.hmget(this.store.key(this.model, id), 'payload', 'consumed'));
      const payload = parse(json);
      if (payload) payload.jti = id;
      if (payload && consumed) payload.consumed = Number(consumed);
      return payload;
    });
  }

  async #findGrant(grantId: string): Promise<Payload | undefined> {
    const known = stateOf(currentContext())?.family;
    const grant = known?.grantId === grantId ? known.grant : (await redisCall(() => this.store.readFamily(grantId)))?.grant;
    return grant ? { ...grant, jti: grantId } : undefined;
  }

  async #findRefreshToken(value: string): Promise<Payload | undefined> {
    const grantId = grantIdOf(value);
    if (!grantId) return undefined;
    const ctx = currentContext();
    const state = stateOf(ctx);
    const prefetched = state?.prefetched?.grantId === grantId ? state.prefetched.read : undefined;
    if (state) state.prefetched = undefined;
    const family = await (prefetched ?? redisCall(() => this.store.readFamily(grantId)));
    const grant = family?.grant;
    if (!family || !grant) return undefined;
    if (state) state.family = family;
    const hash = sha256(value);
    const fromGrant = { jti: value, kind: 'RefreshToken', grantId, accountId: grant.accountId, clientId: grant.clientId };
    if (family.liveHash === hash && family.live) return { ...parse(family.live), ...fromGrant };
    const exp = tombstoneOf(family.tombstones, hash);
    if (!exp || exp <= epoch()) return undefined;

    const consumed = { exp, consumed: 1, ...fromGrant };
    // A consumed token presented to refresh by its own client: the grace
    // window's immediate predecessor goes on through the checks (ROTATE then
    // answers with the same successor); anything else is a reuse.
    const request = refreshRequest(ctx);
    if (!request || request.clientId !== grant.clientId) return consumed;
    const consumedAt = graceConsumedAt(family.grace, hash);
    // (ROTATE checks the window again on Redis's clock; a second of slack here.)
    if (this.store.graceMs && consumedAt !== undefined && Date.now() - consumedAt <= this.store.graceMs + 1000 && family.live) {
      return { ...parse(family.live), ...fromGrant };
    }
    await this.store.revokeFamily(grantId);
    this.#emitReuse(grantId, grant, 'sequential');
    throw new RefreshTokenReused(grant.accountId, 'sequential');
  }

  #emitReuse(grantId: string, grant: Payload | undefined, detectedBy: 'sequential' | 'concurrent'): void {
    this.store.events?.emit('refresh.reuse', {
      clientId: refreshRequest(currentContext())?.clientId ?? grant?.clientId,
      grantId,
      accountId: grant?.accountId,
      detectedBy,
    });
  }

  /** oidc-provider consumes before it builds the successor: the consume waits for the successor's save (ROTATE). */
  consume(id: string): Promise<void> {
    return atBoundary(async () => {
      // An authorization code (challenge endpoint): marked consumed in one
      // step; of two parallel exchanges only the first gets tokens.
      if (this.model === 'AuthorizationCode') {
        const marked = await redisCall(() => this.store.redis.hsetnx(this.store.key(this.model, id), 'consumed', epoch()));
        if (marked !== 1) throw new errors.InvalidGrant('authorization code already consumed');
        return;
      }
      const state = stateOf(currentContext());
      const grantId = grantIdOf(id);
      const family = state?.family;
      if (this.model !== 'RefreshToken' || !state || !grantId || family?.grantId !== grantId || !family.live) {
        throw new Error(`consume of ${this.model} outside a refresh request`);
      }
      const live = parse(family.live)!;
      state.pending = { grantId, presented: id, hash: sha256(id), stored: family.live, exp: live.exp ?? epoch() };
    });
  }

  destroy(id: string): Promise<void> {
    return atBoundary(async () => {
      if (this.model === 'Grant') return this.store.revokeFamily(id);
      if (this.model === 'RefreshToken') {
        // Revoking a refresh token (RFC 7009) ends its whole login.
        const grantId = grantIdOf(id);
        return grantId ? this.store.revokeFamily(grantId) : undefined;
      }
      const key = this.store.key(this.model, id);
      await redisCall(() => this.store.write([(pipe) => pipe.unlink(key)]));
    });
  }

  revokeByGrantId(grantId: string): Promise<void> {
    return atBoundary(async () => {
      if (this.model === 'RefreshToken' || this.model === 'Grant') await this.store.revokeFamily(grantId);
    });
  }

  // Only used by flows this service does not enable (device code, sessions).
  async findByUserCode(): Promise<undefined> {
    return undefined;
  }

  async findByUid(): Promise<undefined> {
    return undefined;
  }
}
