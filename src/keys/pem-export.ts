// `identity keys export --pem DIR`: the published public keys (next, active
// and retiring, the same set as the JWKS) as PEM files named by kid, for
// gateways that verify JWTs only against key files on disk (HAProxy's
// jwt_verify). Beside them, the index HAProxy needs:
//   - kids.map: "<kid> <absolute path of its PEM>", for map() to pick the
//     file by the token's kid;
//   - keys.cfg: a config fragment naming every PEM once in a jwt_verify call,
//     because HAProxy loads key files only while it parses its configuration
//     (at start and reload), never at run time.
// Each file is written to a temporary name and renamed (atomic per file);
// PEMs first, the index last, stale PEMs removed after it. `changed` says
// whether anything on disk changed, so a sync job reloads HAProxy only then.
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { JWK } from 'jose';
import { ServiceError } from '../errors.ts';
import type { Db } from '../store/postgres.ts';
import { PUBLISHED } from './lifecycle.ts';

// Our kids are RFC 7638 thumbprints (base64url); anything else cannot name a file.
const KID = /^[A-Za-z0-9_-]{1,128}$/;
const PEM_FILE = /^[A-Za-z0-9_-]{1,128}\.pem$/;
// The directory is written into HAProxy's config and a map file: no spaces, quotes or comment signs.
const SAFE_DIR = /^[A-Za-z0-9_./-]+$/;

export const PEM_INDEX = { map: 'kids.map', config: 'keys.cfg' } as const;

export type PemExport = { dir: string; kids: string[]; changed: boolean; written: string[]; removed: string[] };

/** The public JWKs the JWKS publishes right now, oldest first (from Postgres). */
export async function publishedPublicJwks(db: Db): Promise<JWK[]> {
  const rows = await db.signingKey.findMany({
    where: { status: { in: [...PUBLISHED] } },
    select: { publicJwk: true },
    orderBy: { createdAt: 'asc' },
  });
  return rows.map((r) => r.publicJwk as JWK);
}

/** A JWKS document's signing keys (from `--jwks-url`), refusing anything that is not one. */
export function signingKeysOf(document: unknown): JWK[] {
  const keys = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new ServiceError('validation_failed', 'the JWKS has no "keys" array');
  return (keys as JWK[]).filter((k) => k && typeof k === 'object' && (k.use === undefined || k.use === 'sig'));
}

function pemOf(jwk: JWK): string {
  try {
    return createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
  } catch {
    throw new ServiceError('validation_failed', `key ${jwk.kid} is not a public key this command can export`);
  }
}

function indexFiles(dir: string, kids: readonly string[]): Map<string, string> {
  const header = '# Written by `identity keys export --pem`; do not edit (the next export replaces it).\n';
  const map = header + kids.map((kid) => `${kid} ${join(dir, `${kid}.pem`)}\n`).join('');
  const config =
    header +
    '# HAProxy loads jwt_verify key files only while parsing its configuration: this names each\n' +
    '# published key once (never evaluated: "if FALSE"). Load it with a second -f, reload on change.\n' +
    'backend identity_jwt_keys\n' +
    kids.map((kid) => `    http-request set-var(txn.identity_jwt_key) str(),jwt_verify("ES256","${join(dir, `${kid}.pem`)}") if FALSE\n`).join('');
  return new Map([
    [PEM_INDEX.map, map],
    [PEM_INDEX.config, config],
  ]);
}

async function writeIfChanged(dir: string, name: string, content: string): Promise<boolean> {
  const path = join(dir, name);
  const existing = await readFile(path, 'utf8').catch(() => undefined);
  if (existing === content) return false;
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  await writeFile(tmp, content, { mode: 0o644 });
  await rename(tmp, path);
  return true;
}

/** Writes `jwks` into `dirArg` as described above; idempotent. */
export async function exportPem(dirArg: string, jwks: readonly JWK[]): Promise<PemExport> {
  const dir = resolve(dirArg);
  if (!SAFE_DIR.test(dir)) throw new ServiceError('validation_failed', `--pem ${dir}: use a path of letters, digits, '.', '_', '-' and '/' only`);
  if (jwks.length === 0) throw new ServiceError('validation_failed', 'no published keys to export');
  const pems = new Map<string, string>();
  for (const jwk of jwks) {
    if (typeof jwk.kid !== 'string' || !KID.test(jwk.kid)) throw new ServiceError('validation_failed', 'a key id cannot name a file');
    pems.set(`${jwk.kid}.pem`, pemOf(jwk));
  }
  const kids = jwks.map((k) => k.kid!);
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, content] of [...pems, ...indexFiles(dir, kids)]) {
    if (await writeIfChanged(dir, name, content)) written.push(name);
  }
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    if (PEM_FILE.test(name) && !pems.has(name)) {
      await rm(join(dir, name), { force: true });
      removed.push(name);
    }
  }
  return { dir, kids, changed: written.length > 0 || removed.length > 0, written, removed };
}
