// Bulk import: one pass over an export file, validated record by record,
// written in batches.
//
//   ndjson    this service's own format, one user per line:
//             {"email": "...", "roles": ["viewer"], "status": "active", "password_hash": "$2b$12$..."}
//   keycloak  a realm export (kc.sh export / the admin console's partial export)
//   auth0     Auth0's bulk user export (NDJSON), with the hashes support sends
//   firebase  `firebase auth:export users.json` plus the project's hash config
//
// (how each maps is in ./importers.ts and README "Migrating in").
//
// A record that does not validate (bad JSON, bad email, unknown role, a hash
// of no supported scheme or out of its cost bounds, the same address twice in
// the file) is reported with its line or record number and field and is not
// written; nothing of it is. Valid records are written 1,000 to a transaction,
// each with its audit row. An address that already exists is skipped, so a
// re-run (after an outage stopped the first) changes nothing it already did.
// Legacy hashes are upgraded to argon2id at the user's first login.
import { ServiceError } from '../errors.ts';
import type { AuditMeta } from '../security/audit.ts';
import type { Accounts, ImportedUser } from './lifecycle.ts';
import { parseFirebaseConfig, RecordError, SOURCES, type ImportSource, type SourceRecord } from './importers.ts';
import { isLegacyHash } from './passwords.ts';
import { refuseImportedHash } from './hash-schemes/index.ts';
import { normalizeEmail } from './users.ts';

export { IMPORT_SOURCES, type ImportSource } from './importers.ts';

/** Lines (or records) one HTTP import may carry; the CLI has no limit. */
export const MAX_IMPORT_LINES = 10_000;
const BATCH = 1000;

export type ImportProgress = { done: number; total: number; created: number; skipped: number; failed: number };

export type ImportOptions = {
  from?: ImportSource;
  /** Firebase's hash parameters (the JSON or the console's text). */
  hashConfig?: string;
  /** Source role (or group) → role here. Roles that map to no configured role are dropped (vendor sources). */
  roleMap?: Record<string, string>;
  maxRecords?: number;
  onProgress?: (progress: ImportProgress) => void;
};

export type ImportError = { line?: number; record?: number; error: string; field?: string; message: string };
export type ImportReport = { created: number; skipped: number; failed: number; errors: ImportError[] };

export async function importUsers(accounts: Accounts, text: string, meta: AuditMeta, options: ImportOptions = {}): Promise<ImportReport> {
  const from = options.from ?? 'ndjson';
  const source = SOURCES[from];
  const context = { ...(options.hashConfig ? { firebase: parseFirebaseConfig(options.hashConfig) } : {}) };
  const records = source.records(text);
  if (options.maxRecords !== undefined && records.length > options.maxRecords) {
    throw new ServiceError('validation_failed', `at most ${options.maxRecords} records per import`, { field: 'body' });
  }
  const report: ImportReport = { created: 0, skipped: 0, failed: 0, errors: [] };
  const seen = new Map<string, number>();
  const roles = { known: new Set(accounts.roles), map: options.roleMap ?? {}, strict: from === 'ndjson' };
  let batch: ImportedUser[] = [];
  let done = 0;
  const flush = async () => {
    const created = await accounts.importBatch(batch, from, meta);
    report.created += created;
    report.skipped += batch.length - created;
    batch = [];
    options.onProgress?.({ done, total: records.length, created: report.created, skipped: report.skipped, failed: report.failed });
  };
  for (const { ref, value } of records) {
    done++;
    try {
      const user = validate(source.map(value, context), roles);
      const first = seen.get(user.email);
      if (first !== undefined) throw new RecordError('email', `the same address as ${source.unit} ${first} of this file`, 'conflict');
      seen.set(user.email, ref);
      batch.push({ ...user, details: { [source.unit]: ref, legacy_hash: !!user.passwordHash && isLegacyHash(user.passwordHash) } });
    } catch (err) {
      if (!(err instanceof RecordError)) throw err;
      report.failed++;
      report.errors.push({ [source.unit]: ref, error: err.code, field: err.field, message: `${err.field}: ${err.message}` });
    }
    if (batch.length >= BATCH) await flush();
  }
  await flush();
  return report;
}

type RoleRules = { known: Set<string>; map: Record<string, string>; strict: boolean };

/** The checks every source shares: the address, the roles, the hash. */
function validate(r: SourceRecord, roles: RoleRules): Omit<ImportedUser, 'details'> {
  const email = normalizeEmail(r.email ?? '');
  if (!email) throw new RecordError('email', r.email ? 'not a valid email address' : 'missing');
  const mapped = r.roles.map((role) => roles.map[role] ?? role);
  const unknown = mapped.filter((role) => !roles.known.has(role));
  if (roles.strict && unknown.length) throw new RecordError('roles', `unknown role ${unknown.join(', ')} (configured: ${[...roles.known].join(', ')})`);
  if (r.passwordHash) {
    const reason = refuseImportedHash(r.passwordHash);
    if (reason) throw new RecordError(r.hashField ?? 'password_hash', reason);
  }
  return {
    email,
    roles: [...new Set(mapped.filter((role) => roles.known.has(role)))],
    status: r.status,
    emailVerified: r.emailVerified,
    passwordHash: r.passwordHash ?? null,
  };
}
