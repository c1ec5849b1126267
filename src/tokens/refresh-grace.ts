// Refresh-token reuse: detection events, and the optional grace window
// (REFRESH_REUSE_GRACE_SECONDS) for clients that lost a refresh response on
// the network. Within the window, the immediate previous token presented
// again by the same client gets the same response back instead of revoking:
//
//   after a successful rotation old → new, `remember` stores the response
//   under P oidc:grace:<sha256("grace:" + old)>, AES-256-GCM-encrypted with a
//   key derived (HKDF) from the old token itself and bound to the client id,
//   expiring with the window. Redis alone can decrypt nothing.
//   a reuse of `old` replays it only if the record is there (window), decrypts
//   for this client, and `new` is still unused (immediate predecessor);
//   anything else is a real replay: the grant is revoked.
import { hkdfSync } from 'node:crypto';
import { errors } from 'oidc-provider';
import { seal, SealError, sha256, unseal } from '../lib/crypto.ts';
import type { SecurityEvents } from '../security/events.ts';
import { redisCall, type RedisClient } from '../store/redis.ts';
import { currentContext, paramOf, refreshRequest, type OidcContext } from './oidc.ts';

type Body = Record<string, unknown> & { refresh_token?: string };

/** Thrown from the adapter so oidc-provider stops; the middleware answers with the replayed body. */
class GraceReplay extends errors.InvalidGrant {
  constructor() {
    super('refresh token replayed within the grace window');
  }
}

const replays = new WeakMap<object, Body>();

function keyFor(token: string, clientId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', token, 'identity refresh grace', clientId, 32));
}

export type ConsumedToken = { clientId?: unknown; grantId?: unknown; accountId?: unknown; consumed?: number };

export class RefreshReuse {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #graceSeconds: number;
  readonly #events: SecurityEvents | undefined;
  /** Is this refresh token (by value) stored and not yet consumed? */
  readonly #isLive: (token: string) => Promise<boolean>;

  constructor(opts: {
    redis: RedisClient;
    prefix: string;
    graceSeconds: number;
    events: SecurityEvents | undefined;
    isLive: (token: string) => Promise<boolean>;
  }) {
    this.#redis = opts.redis;
    this.#prefix = opts.prefix;
    this.#graceSeconds = opts.graceSeconds;
    this.#events = opts.events;
    this.#isLive = opts.isLive;
  }

  #recordKey(token: string): string {
    return `${this.#prefix}oidc:grace:${sha256(`grace:${token}`)}`;
  }

  /** After a successful rotation (called by the provider middleware). */
  async remember(presented: string, clientId: string, body: Body): Promise<void> {
    if (!this.#graceSeconds) return;
    const record = seal(keyFor(presented, clientId), JSON.stringify(body), clientId);
    await redisCall(() => this.#redis.set(this.#recordKey(presented), record, 'EX', this.#graceSeconds));
  }

  async #recall(presented: string, clientId: string): Promise<Body | undefined> {
    const record = await redisCall(() => this.#redis.get(this.#recordKey(presented)));
    if (!record) return undefined;
    try {
      return JSON.parse(unseal(keyFor(presented, clientId), record, clientId)) as Body;
    } catch (err) {
      if (err instanceof SealError) return undefined; // another client's record: no replay
      throw err;
    }
  }

  /**
   * A consumed refresh token was presented to refresh. Throws GraceReplay
   * when the grace window applies; otherwise emits `refresh.reuse` and
   * returns, and the caller revokes the grant. A token consumed within the window but whose
   * response is not remembered yet (a parallel request still rotating it) is
   * waited for, up to one second.
   */
  async onReuse(presented: string, token: ConsumedToken, detectedBy: 'sequential' | 'concurrent'): Promise<void> {
    const ctx = currentContext();
    const request = refreshRequest(ctx);
    if (!request) return; // introspection or revocation of a consumed token: not a reuse
    const consumedAgo = Date.now() / 1000 - (token.consumed ?? 0);
    if (this.#graceSeconds && request.clientId === token.clientId && consumedAgo <= this.#graceSeconds + 1) {
      const deadline = Date.now() + 1000;
      let body = await this.#recall(presented, request.clientId);
      while (!body && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        body = await this.#recall(presented, request.clientId);
      }
      if (body?.refresh_token && (await redisCall(() => this.#isLive(body!.refresh_token!)))) {
        replays.set(ctx!, body);
        this.#events?.emit('refresh.grace_replay', { clientId: request.clientId, grantId: str(token.grantId) });
        throw new GraceReplay();
      }
    }
    this.#events?.emit('refresh.reuse', {
      clientId: request.clientId,
      grantId: str(token.grantId),
      accountId: str(token.accountId),
      detectedBy,
    });
  }
}

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

/**
 * Provider middleware: answers a grace replay with the remembered body, and
 * remembers each successful rotation's response.
 */
export function refreshGraceMiddleware(reuse: RefreshReuse | undefined) {
  return async function refreshGrace(ctx: OidcContext, next: () => Promise<void>): Promise<void> {
    await next();
    const replay = replays.get(ctx);
    if (replay) {
      ctx.status = 200;
      ctx.body = replay;
      return;
    }
    const body = ctx.body as Body | undefined;
    const request = ctx.status === 200 ? refreshRequest(ctx) : undefined;
    const presented = paramOf(ctx, 'refresh_token');
    if (reuse && request && body?.refresh_token && presented) {
      // Best effort: without the record a retry is treated as a replay (fail closed).
      await reuse.remember(presented, request.clientId, body).catch(() => undefined);
    }
  };
}
