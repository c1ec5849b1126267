// Keeps this replica's signing key and JWKS in step with Postgres, without a
// restart. oidc-provider reads its keystore once, at construction (see
// node_modules/oidc-provider/lib/helpers/initialize_keystore.js), and its docs
// rotate keys by reloading processes; so on a key change we build a new
// Provider with the new key and swap the request handler atomically. All
// provider state lives in Redis and Postgres, so the swap loses nothing;
// requests already inside the old provider finish with the old key, which is
// still published.
//
// A replica signs only while it knows it is right to: when its key sync has
// failed KEY_SYNC_MAX_MISSED intervals in a row, or the key it signs with is
// no longer the active one and it could not load the new one, /token answers
// 503 and readiness turns false (a stale replica could otherwise sign with a
// key that leaves the JWKS). The published keys also serve the admin API's
// in-process verification (verificationKeys), so a revoked key stops working
// there at once.
import { createLocalJWKSet, type JWK, type JWTVerifyGetKey } from 'jose';
import type Provider from 'oidc-provider';
import { sha256 } from '../lib/crypto.ts';
import { loadPublished, publishedRows, versionOf, type SigningKeys } from '../keys/lifecycle.ts';
import type { SigningAlg } from '../keys/keystore.ts';
import type { Logger } from '../observability/log.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { AuditMeta } from '../security/audit.ts';
import { requestHandlerOf, type RequestHandler as Handler } from './oidc.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';

export type KeyRotationOptions = {
  keys: SigningKeys;
  /** Seconds between checks of the keys table. */
  syncInterval: number;
  /** Cache-Control max-age of the JWKS, seconds. */
  jwksMaxAge: number;
  /** Builds a provider that signs with `signingKey`. */
  buildProvider(signingKey: JWK): Provider;
  logger: Logger;
  /** Consecutive failed syncs after which this replica stops signing (KEY_SYNC_MAX_MISSED). */
  maxMissedSyncs?: number;
  /** SIGNING_ALG: only a warning when the active key disagrees. */
  configuredAlg?: SigningAlg;
  metrics?: Metrics;
  now?: () => Date;
};

type Jwks = { body: Buffer; etag: string };

export class KeyRotation {
  readonly #opts: KeyRotationOptions;
  #version = '';
  #provider: Provider | undefined;
  #handler: Handler | undefined;
  #jwks: Jwks = { body: Buffer.alloc(0), etag: '""' };
  #timer: NodeJS.Timeout | undefined;
  #syncing: Promise<void> | undefined;
  #activeKid = '';
  #published: JWK[] = [];
  #keySet: JWTVerifyGetKey = createLocalJWKSet({ keys: [] });
  #lastSynced = 0;
  #signingKeyActive = false;
  #warnedAlg = '';

  constructor(opts: KeyRotationOptions) {
    this.#opts = opts;
  }

  #now(): Date {
    return this.#opts.now?.() ?? new Date();
  }

  /** Ensures a signing key exists, builds the first provider and starts the sync loop. */
  async start(): Promise<void> {
    await this.#opts.keys.advance(this.#now());
    await this.#reload();
    this.#timer = setInterval(() => void this.sync(), this.#opts.syncInterval * 1000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  get provider(): Provider {
    if (!this.#provider) throw new Error('KeyRotation.start() has not run');
    return this.#provider;
  }

  /** kid of the key this replica signs with. */
  get activeKid(): string {
    return this.#activeKid;
  }

  /** Synced within KEY_SYNC_MAX_MISSED intervals, and the key it signs with is still the active one. */
  get fitToSign(): boolean {
    const window = (this.#opts.maxMissedSyncs ?? 3) * this.#opts.syncInterval * 1000;
    return this.#activeKid !== '' && this.#signingKeyActive && Date.now() - this.#lastSynced <= window;
  }

  /** The published keys (JWKS members), for in-process verification: a key revoked here is gone at once. */
  verificationKeys(): JWTVerifyGetKey {
    return (header, token) => this.#keySet(header, token);
  }

  /** kids in the JWKS right now. */
  get publishedKids(): string[] {
    return this.#published.map((k) => k.kid!).filter(Boolean);
  }

  /**
   * A stable request handler that always reaches the current provider. The
   * token endpoint answers 503 while this replica is not fit to sign.
   */
  callback(): Handler {
    return (req, res) => {
      if (!this.fitToSign && req.method === 'POST' && (req.url ?? '').split('?')[0] === '/token') {
        res.statusCode = 503;
        res.setHeader('Retry-After', String(this.#opts.syncInterval));
        res.setHeader('Cache-Control', 'no-store');
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        res.end(JSON.stringify({ error: 'temporarily_unavailable', error_description: 'signing keys are not in sync, try again later' }));
        return;
      }
      this.#handler!(req, res);
    };
  }

  /**
   * GET /jwks from the pre-serialized body: strong ETag, 304, public caching.
   * `headers` (name, value, name, value...): more headers for the answer,
   * written with it in one writeHead (the public listener's fast path).
   */
  jwks(): (req: IncomingMessage, res: ServerResponse, headers?: string[]) => void {
    const cacheControl = `public, max-age=${this.#opts.jwksMaxAge}`;
    return (req, res, headers = []) => {
      const { body, etag } = this.#jwks;
      const inm = req.headers['if-none-match'];
      if (inm && (inm.trim() === '*' || inm.split(',').some((t) => t.trim() === etag))) {
        res.writeHead(304, [...headers, 'Cache-Control', cacheControl, 'ETag', etag]);
        res.end();
        return;
      }
      res.writeHead(200, [
        ...headers,
        'Cache-Control', cacheControl,
        'ETag', etag,
        'Content-Type', 'application/jwk-set+json; charset=utf-8',
        'Content-Length', String(body.length),
      ]);
      res.end(req.method === 'HEAD' ? undefined : body);
    };
  }

  /**
   * One check: applies due transitions (under the database lock) and reloads
   * when the published set changed. Errors are logged; the current keys stay.
   */
  sync(): Promise<void> {
    this.#syncing ??= this.#syncOnce().finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  async #syncOnce(): Promise<void> {
    try {
      const { keys } = this.#opts;
      const done = await keys.advance(this.#now());
      if (done.length) this.#opts.logger.info({ actions: done }, 'signing keys advanced');
      const rows = await publishedRows(keys.db);
      const mine = rows.find((r) => r.kid === this.#activeKid);
      const stillActive = mine?.status === 'active';
      // A key that left the JWKS (revoked) signs nothing more, not even while
      // its successor loads; one another replica just retired stays published,
      // so this replica keeps signing with it until the reload swaps keys
      // (answering 503 in that window refused logins for nothing).
      if (!mine) this.#signingKeyActive = false;
      if (versionOf(rows) !== this.#version) {
        try {
          await this.#reload();
        } catch (err) {
          this.#signingKeyActive = stillActive;
          throw err;
        }
      } else this.#signingKeyActive = stillActive;
      this.#lastSynced = Date.now();
    } catch (err) {
      this.#opts.metrics?.keySyncFailures.inc();
      this.#opts.logger.warn(
        { err: { message: (err as Error).message }, fitToSign: this.fitToSign },
        'signing key sync failed; keeping the current keys',
      );
    }
  }

  async #reload(): Promise<void> {
    const { db, kek } = this.#opts.keys;
    const keys = await loadPublished(db, kek);
    const body = Buffer.from(JSON.stringify({ keys: keys.published }));
    const provider = this.#opts.buildProvider(keys.signing);
    const handler = requestHandlerOf(provider);
    // The swap: plain assignments, no await in between.
    this.#jwks = { body, etag: `"${sha256(body)}"` };
    this.#published = keys.published;
    this.#keySet = createLocalJWKSet({ keys: keys.published });
    this.#provider = provider;
    this.#handler = handler;
    this.#version = keys.version;
    const previous = this.#activeKid;
    this.#activeKid = keys.signing.kid!;
    this.#signingKeyActive = true;
    this.#lastSynced = Date.now();
    if (previous && previous !== this.#activeKid) this.#opts.logger.info({ kid: this.#activeKid, previous }, 'signing with a new key');
    const { configuredAlg } = this.#opts;
    if (configuredAlg && keys.signing.alg !== configuredAlg && this.#warnedAlg !== this.#activeKid) {
      this.#warnedAlg = this.#activeKid;
      this.#opts.logger.warn(
        { configured: configuredAlg, signing: keys.signing.alg, kid: this.#activeKid },
        'SIGNING_ALG differs from the active key: signing with the active key; change the algorithm with `identity keys set-alg`',
      );
    }
  }

  // Operator actions, applied to this replica at once; other replicas follow
  // within one sync interval.
  async rotate(meta: AuditMeta) {
    const out = await this.#opts.keys.rotate(meta, this.#now());
    await this.#syncAfterChange();
    return out;
  }

  async setAlg(alg: SigningAlg, meta: AuditMeta) {
    const out = await this.#opts.keys.setAlg(alg, meta, this.#now());
    await this.#syncAfterChange();
    return out;
  }

  async revoke(kid: string, meta: AuditMeta) {
    const out = await this.#opts.keys.revoke(kid, meta, this.#now());
    await this.#syncAfterChange();
    return out;
  }

  // A sync already under way may have read the table before the change.
  async #syncAfterChange(): Promise<void> {
    await this.#syncing;
    await this.sync();
  }
}
