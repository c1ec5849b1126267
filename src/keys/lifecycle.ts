// Signing key lifecycle in Postgres: next (published, not signing) -> active
// (signing) -> retiring (published, no longer signing) -> retired (gone), plus
// revoked (emergency: gone at once). Every change happens in one transaction
// under an advisory lock, so replicas never create competing keys. The
// schedule (plan) is a pure function; SigningKeys applies it and is what the
// CLI and the rotation loop call. Operator actions are audited here, so they
// are audited the same way whoever calls them.
//
// The algorithm lives in the key table, not in each replica's SIGNING_ALG:
// SIGNING_ALG picks the first key's algorithm only, a successor keeps its
// predecessor's, and `keys set-alg` changes it by publishing a `next` key of
// the new algorithm that signs after the full pre-publication window. So
// replicas whose SIGNING_ALG disagree during a rolling deploy all sign with
// the one active key and create nothing (src/tokens/key-rotation.ts warns).
import type { JWK } from 'jose';
import { ServiceError } from '../errors.ts';
import { seal, SealError, unseal } from '../lib/crypto.ts';
import type { AuditLog, AuditMeta } from '../security/audit.ts';
import type { Db, Tx } from '../store/postgres.ts';
import { newKey, publicMembers, type NewKey, type SigningAlg } from './keystore.ts';

const LOCK_KEY = 72_707_370;
export const PUBLISHED = ['next', 'active', 'retiring'] as const;
// Verifiers commonly accept a token a few seconds past `exp`.
const CLOCK_SKEW_S = 5;

export type KeyPolicy = Readonly<{
  alg: SigningAlg;
  /** Seconds a key signs before its successor takes over; 0 = manual rotation only. */
  rotationInterval: number;
  /** Seconds a new key is published before it may sign. */
  prePublish: number;
  /** Seconds a key stays published after it stopped signing. */
  postPublish: number;
}>;

export function keyPolicy(config: {
  signingAlg: SigningAlg;
  keyRotationInterval: number;
  jwksMaxAge: number;
  keySyncInterval: number;
  accessTokenTtl: number;
}): KeyPolicy {
  // Every replica notices a change within one sync interval, so both windows
  // count from the moment the slowest replica can have caught up.
  return Object.freeze({
    alg: config.signingAlg,
    rotationInterval: config.keyRotationInterval,
    prePublish: config.jwksMaxAge + config.keySyncInterval,
    postPublish: config.accessTokenTtl + config.keySyncInterval + CLOCK_SKEW_S,
  });
}

type Row = {
  kid: string;
  alg: string;
  status: 'next' | 'active' | 'retiring' | 'retired' | 'revoked';
  createdAt: Date;
  activatedAt: Date | null;
  deactivatedAt: Date | null;
  retiredAt: Date | null;
};

type Action =
  | { type: 'promote'; kid: string }
  | { type: 'create-active'; alg: SigningAlg }
  | { type: 'create-next'; alg: SigningAlg }
  | { type: 'retire'; kid: string };
/** An action as carried out: every one names its key. */
export type Applied = { type: Action['type']; kid: string };

// The audit event of each scheduled transition.
const SCHEDULED: Record<Action['type'], 'key.created' | 'key.activated' | 'key.retired'> = {
  'create-active': 'key.created',
  'create-next': 'key.created',
  promote: 'key.activated',
  retire: 'key.retired',
};

const after = (from: Date, seconds: number) => new Date(from.getTime() + seconds * 1000);

/**
 * What is due now; empty when the keys are as they should be. Pure. Only an
 * empty table gets a key that signs at once (in SIGNING_ALG); otherwise a key
 * signs only after its pre-publication window, whatever the replica's
 * SIGNING_ALG says.
 */
export function plan(rows: readonly Row[], policy: KeyPolicy, now: Date): Action[] {
  const actions: Action[] = [];
  const active = rows.find((r) => r.status === 'active');
  const next = rows.find((r) => r.status === 'next');
  if (!active) {
    // First boot (or a table left without an active key by hand): sign at once.
    actions.push(next ? { type: 'promote', kid: next.kid } : { type: 'create-active', alg: policy.alg });
  } else if (next && now >= after(next.createdAt, policy.prePublish)) {
    actions.push({ type: 'promote', kid: next.kid });
  } else if (
    !next &&
    policy.rotationInterval > 0 &&
    now >= after(active.activatedAt ?? active.createdAt, policy.rotationInterval - policy.prePublish)
  ) {
    actions.push({ type: 'create-next', alg: active.alg as SigningAlg });
  }
  for (const r of rows) {
    if (r.status === 'retiring' && now >= after(r.deactivatedAt ?? r.createdAt, policy.postPublish)) {
      actions.push({ type: 'retire', kid: r.kid });
    }
  }
  return actions;
}

const ROW_SELECT = {
  kid: true,
  alg: true,
  status: true,
  createdAt: true,
  activatedAt: true,
  deactivatedAt: true,
  retiredAt: true,
} as const;

export async function publishedRows(db: Db): Promise<Row[]> {
  return db.signingKey.findMany({ where: { status: { in: [...PUBLISHED] } }, select: ROW_SELECT, orderBy: { createdAt: 'asc' } });
}

function locked<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return db.$locked(fn, LOCK_KEY);
}

/** The private JWK sealed under the KEK, bound to its kid. */
function sealKey(kek: Buffer, jwk: JWK, kid: string): string {
  return seal(kek, JSON.stringify(jwk), kid);
}

function unsealKey(kek: Buffer, sealed: string, kid: string): string {
  try {
    return unseal(kek, sealed, kid);
  } catch (cause) {
    if (!(cause instanceof SealError)) throw cause;
    throw new ServiceError('config_invalid', 'cannot decrypt a signing key: KEY_ENCRYPTION_KEY is not the one it was sealed with', {
      cause,
    });
  }
}

async function insertKey(tx: Tx, kek: Buffer, key: NewKey, status: 'next' | 'active', now: Date): Promise<void> {
  await tx.signingKey.create({
    data: {
      kid: key.kid,
      alg: key.alg,
      status,
      publicJwk: key.publicJwk as object,
      privateJwkEnc: sealKey(kek, key.privateJwk, key.kid),
      createdAt: now,
      activatedAt: status === 'active' ? now : null,
    },
  });
}

async function promote(tx: Tx, kid: string, now: Date): Promise<void> {
  await tx.signingKey.updateMany({
    where: { status: 'active', kid: { not: kid } },
    data: { status: 'retiring', deactivatedAt: now },
  });
  await tx.signingKey.update({ where: { kid }, data: { status: 'active', activatedAt: now } });
}

// A key that leaves the JWKS is never needed again: its private part is erased.
async function unpublish(tx: Tx, kid: string, status: 'retired' | 'revoked', now: Date): Promise<void> {
  await tx.signingKey.update({
    where: { kid },
    data: { status, retiredAt: now, privateJwkEnc: '', ...(status === 'revoked' ? { deactivatedAt: now } : {}) },
  });
}

/**
 * Applies whatever the schedule says is due (creates the first key, creates
 * or promotes a successor, retires old keys). Returns the actions taken.
 */
async function advance(db: Db, kek: Buffer, policy: KeyPolicy, now: Date = new Date()): Promise<Applied[]> {
  const guess = plan(await publishedRows(db), policy, now);
  if (guess.length === 0) return [];
  // Key generation (PS256: a 3072-bit RSA key) happens outside the lock.
  const creating = guess.find((a) => a.type === 'create-next' || a.type === 'create-active');
  const fresh = creating && 'alg' in creating ? await newKey(creating.alg) : undefined;
  return locked(db, async (tx) => {
    const actions = plan(await tx.signingKey.findMany({ where: { status: { in: [...PUBLISHED] } }, select: ROW_SELECT }), policy, now);
    const applied: Applied[] = [];
    for (const action of actions) {
      if (action.type === 'promote') await promote(tx, action.kid, now);
      if (action.type === 'retire') await unpublish(tx, action.kid, 'retired', now);
      if (action.type === 'create-next' || action.type === 'create-active') {
        const key = fresh?.alg === action.alg ? fresh : await newKey(action.alg);
        await insertKey(tx, kek, key, action.type === 'create-next' ? 'next' : 'active', now);
        if (action.type === 'create-active') await promote(tx, key.kid, now);
        applied.push({ type: action.type, kid: key.kid });
      } else applied.push(action);
    }
    return applied;
  });
}

export type KeyView = {
  kid: string;
  alg: string;
  status: Row['status'];
  created_at: string;
  activated_at: string | null;
  deactivated_at: string | null;
  retired_at: string | null;
  /** next: when it starts signing; active: when a successor is due; retiring: when it leaves the JWKS. */
  next_transition_at: string | null;
};

function view(r: Row, policy: KeyPolicy): KeyView {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  const nextAt =
    r.status === 'next'
      ? after(r.createdAt, policy.prePublish)
      : r.status === 'active' && policy.rotationInterval > 0
        ? after(r.activatedAt ?? r.createdAt, policy.rotationInterval)
        : r.status === 'retiring'
          ? after(r.deactivatedAt ?? r.createdAt, policy.postPublish)
          : null;
  return {
    kid: r.kid,
    alg: r.alg,
    status: r.status,
    created_at: r.createdAt.toISOString(),
    activated_at: iso(r.activatedAt),
    deactivated_at: iso(r.deactivatedAt),
    retired_at: iso(r.retiredAt),
    next_transition_at: iso(nextAt),
  };
}

/** Every key, newest first, without private material. */
async function listKeys(db: Db, policy: KeyPolicy): Promise<KeyView[]> {
  const rows = await db.signingKey.findMany({ select: ROW_SELECT, orderBy: { createdAt: 'desc' } });
  return rows.map((r) => view(r, policy));
}

/**
 * Starts a rotation: publishes a successor key now; it signs once the
 * pre-publication window has passed (the schedule promotes it). Idempotent
 * while a successor is waiting.
 */
async function rotateKeys(db: Db, kek: Buffer, policy: KeyPolicy, now: Date = new Date()): Promise<KeyView> {
  const current = await db.signingKey.findFirst({ where: { status: 'active' }, select: { alg: true } });
  const fresh = await newKey((current?.alg as SigningAlg | undefined) ?? policy.alg);
  const row = await locked(db, async (tx) => {
    const waiting = await tx.signingKey.findFirst({ where: { status: 'next' }, select: ROW_SELECT });
    if (waiting) return waiting;
    await insertKey(tx, kek, fresh, 'next', now);
    return tx.signingKey.findUniqueOrThrow({ where: { kid: fresh.kid }, select: ROW_SELECT });
  });
  return view(row, policy);
}

/**
 * Moves signing to `alg`: publishes a key of that algorithm as `next` (in
 * place of a waiting successor of another algorithm); it signs once its
 * pre-publication window has passed. Idempotent; nothing to do when the
 * active key already uses `alg` and nothing else waits.
 */
async function setAlgorithm(db: Db, kek: Buffer, alg: SigningAlg, policy: KeyPolicy, now: Date = new Date()): Promise<KeyView | null> {
  const fresh = await newKey(alg);
  const row = await locked(db, async (tx) => {
    const rows = await tx.signingKey.findMany({ where: { status: { in: ['active', 'next'] } }, select: ROW_SELECT });
    const next = rows.find((r) => r.status === 'next');
    if (next?.alg === alg) return next;
    if (next) await unpublish(tx, next.kid, 'retired', now);
    if (!next && rows.find((r) => r.status === 'active')?.alg === alg) return null;
    await insertKey(tx, kek, fresh, 'next', now);
    return tx.signingKey.findUniqueOrThrow({ where: { kid: fresh.kid }, select: ROW_SELECT });
  });
  return row && view(row, policy);
}

/**
 * Emergency: removes a (compromised) key from the JWKS at once. Tokens it
 * signed stop verifying as soon as verifiers refetch the JWKS. If it was the
 * signing key, a successor signs immediately.
 */
async function revokeKey(db: Db, kek: Buffer, kid: string, policy: KeyPolicy, now: Date = new Date()): Promise<KeyView[]> {
  // A successor in the revoked key's algorithm, generated outside the lock.
  const victim = await db.signingKey.findUnique({ where: { kid }, select: { alg: true } });
  const fresh = await newKey((victim?.alg as SigningAlg | undefined) ?? policy.alg);
  await locked(db, async (tx) => {
    const row = await tx.signingKey.findUnique({ where: { kid }, select: ROW_SELECT });
    if (!row) throw new ServiceError('not_found', `no signing key ${kid}`);
    if (row.status === 'retired' || row.status === 'revoked') throw new ServiceError('conflict', `key ${kid} is already ${row.status}`);
    await unpublish(tx, kid, 'revoked', now);
    if (row.status === 'active') {
      const next = await tx.signingKey.findFirst({ where: { status: 'next' }, select: ROW_SELECT });
      if (next) await promote(tx, next.kid, now);
      else {
        await insertKey(tx, kek, fresh, 'active', now);
        await promote(tx, fresh.kid, now);
      }
    }
  });
  return listKeys(db, policy);
}

/**
 * Re-encrypts every stored private key from `oldKek` to `newKek`. Keys that
 * already open under `newKek` are left as they are, so it can be re-run.
 */
async function rekeyKeys(db: Db, oldKek: Buffer, newKek: Buffer): Promise<{ rekeyed: string[]; unchanged: string[] }> {
  return locked(db, async (tx) => {
    const rows = await tx.signingKey.findMany({ where: { privateJwkEnc: { not: '' } }, select: { kid: true, privateJwkEnc: true } });
    const out = { rekeyed: [] as string[], unchanged: [] as string[] };
    for (const r of rows) {
      try {
        unseal(newKek, r.privateJwkEnc, r.kid);
        out.unchanged.push(r.kid);
        continue;
      } catch (err) {
        if (!(err instanceof SealError)) throw err;
      }
      const plain = unsealKey(oldKek, r.privateJwkEnc, r.kid);
      await tx.signingKey.update({ where: { kid: r.kid }, data: { privateJwkEnc: seal(newKek, plain, r.kid) } });
      out.rekeyed.push(r.kid);
    }
    return out;
  });
}

export type PublishedKeys = {
  /** Changes whenever a key is added, changes state or leaves the JWKS. */
  version: string;
  /** Private JWK of the key that signs. */
  signing: JWK;
  /** Public JWKs to publish: active first, then next, then retiring. */
  published: JWK[];
};

const ORDER = { active: 0, next: 1, retiring: 2 } as Record<string, number>;

export function versionOf(rows: readonly Pick<Row, 'kid' | 'status'>[]): string {
  return rows
    .map((r) => `${r.kid}:${r.status}`)
    .sort()
    .join(',');
}

/** The published keys and the active one's private JWK (whatever its algorithm). */
export async function loadPublished(db: Db, kek: Buffer): Promise<PublishedKeys> {
  const rows = await db.signingKey.findMany({ where: { status: { in: [...PUBLISHED] } } });
  rows.sort((a, b) => ORDER[a.status]! - ORDER[b.status]! || b.createdAt.getTime() - a.createdAt.getTime());
  const active = rows.find((r) => r.status === 'active');
  if (!active) throw new ServiceError('server_error', 'no active signing key');
  return {
    version: versionOf(rows),
    signing: JSON.parse(unsealKey(kek, active.privateJwkEnc, active.kid)) as JWK,
    published: rows.map((r) => publicMembers(r.publicJwk as JWK)),
  };
}

/** The key operations with their audit rows: what the CLI and the rotation loop call. */
export class SigningKeys {
  readonly db: Db;
  readonly kek: Buffer;
  readonly policy: KeyPolicy;
  readonly #audit: AuditLog;

  constructor(deps: { db: Db; kek: Buffer; policy: KeyPolicy; audit: AuditLog }) {
    this.db = deps.db;
    this.kek = deps.kek;
    this.policy = deps.policy;
    this.#audit = deps.audit;
  }

  list(): Promise<KeyView[]> {
    return listKeys(this.db, this.policy);
  }

  /** Applies whatever the schedule says is due; each transition is audited (actor `schedule`). */
  async advance(now?: Date): Promise<Applied[]> {
    const applied = await advance(this.db, this.kek, this.policy, now);
    for (const a of applied) await this.#audit.record({ actor: 'schedule', type: SCHEDULED[a.type], subject: a.kid, details: { action: a.type } });
    return applied;
  }

  async rotate(meta: AuditMeta, now?: Date): Promise<KeyView> {
    const next = await rotateKeys(this.db, this.kek, this.policy, now);
    await this.#audit.record({ ...meta, type: 'key.rotated', subject: next.kid, details: { alg: next.alg } });
    return next;
  }

  /** `keys set-alg`: the new algorithm signs after the pre-publication window; null when it already does. */
  async setAlg(alg: SigningAlg, meta: AuditMeta, now?: Date): Promise<KeyView | null> {
    const next = await setAlgorithm(this.db, this.kek, alg, this.policy, now);
    await this.#audit.record({ ...meta, type: 'key.algorithm_set', subject: next?.kid ?? null, details: { alg } });
    return next;
  }

  /** Is `kid` in the JWKS right now (next, active or retiring)? Read from Postgres, for the admin API. */
  async isPublished(kid: string): Promise<boolean> {
    const row = await this.db.signingKey.findUnique({ where: { kid }, select: { status: true } });
    return !!row && (PUBLISHED as readonly string[]).includes(row.status);
  }

  async revoke(kid: string, meta: AuditMeta, now?: Date): Promise<KeyView[]> {
    const keys = await revokeKey(this.db, this.kek, kid, this.policy, now);
    await this.#audit.record({ ...meta, type: 'key.revoked', subject: kid });
    return keys;
  }

  async rekey(oldKek: Buffer, meta: AuditMeta): Promise<{ rekeyed: string[]; unchanged: string[] }> {
    const out = await rekeyKeys(this.db, oldKek, this.kek);
    await this.#audit.record({ ...meta, type: 'key.rekeyed', details: { rekeyed: out.rekeyed.length, unchanged: out.unchanged.length } });
    return out;
  }
}
