// Bulk import from NDJSON, one user per line:
//   {"email": "...", "roles": ["viewer"], "status": "active", "password_hash": "$2b$12$..."}
// password_hash is a hash of a supported scheme (./hash-schemes: bcrypt
// $2a$/$2b$/$2y$ up to cost 14, argon2 PHC strings with bounded parameters in
// any order), or absent/null (the user sets a password through a reset).
// Legacy hashes are upgraded to argon2id at the user's first login. A bad line
// is reported and skipped.
import { z } from 'zod';
import { ServiceError } from '../errors.ts';
import type { AuditMeta } from '../security/audit.ts';
import type { Accounts } from './lifecycle.ts';
import { refuseImportedHash } from './hash-schemes/index.ts';
import { isLegacyHash } from './passwords.ts';

export const importLine = z.strictObject({
  email: z.string().max(320),
  roles: z.array(z.string()).max(64).default([]),
  status: z.enum(['pending', 'active', 'disabled']).default('active'),
  password_hash: z
    .string()
    .max(1024)
    .superRefine((hash, ctx) => {
      const reason = refuseImportedHash(hash);
      if (reason) ctx.addIssue({ code: 'custom', message: reason });
    })
    .nullable()
    .optional(),
});

export const MAX_IMPORT_LINES = 10_000;

const PER_RECORD = new Set(['validation_failed', 'conflict']);

export type ImportReport = {
  created: number;
  failed: number;
  errors: { line: number; error: string; field?: string; message: string }[];
};

export async function importUsers(accounts: Accounts, ndjson: string, meta: AuditMeta): Promise<ImportReport> {
  const report: ImportReport = { created: 0, failed: 0, errors: [] };
  const lines = ndjson.split(/\r?\n/);
  if (lines.length > MAX_IMPORT_LINES + 1) {
    throw new ServiceError('validation_failed', `at most ${MAX_IMPORT_LINES} lines per import`, { field: 'body' });
  }
  for (const [i, text] of lines.entries()) {
    if (!text.trim()) continue;
    try {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new ServiceError('validation_failed', 'not a JSON object', { field: 'line' });
      }
      const parsed = importLine.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        const field = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(',') : 'line');
        throw new ServiceError('validation_failed', `${field}: ${issue.message}`, { field });
      }
      const { email, roles, status, password_hash } = parsed.data;
      await accounts.importOne({ email, roles, status, passwordHash: password_hash ?? null }, meta, {
        line: i + 1,
        legacy_hash: !!password_hash && isLegacyHash(password_hash),
      });
      report.created++;
    } catch (err) {
      // A bad record is reported and skipped; anything else (a store outage) stops the import.
      if (!(err instanceof ServiceError) || !PER_RECORD.has(err.code)) throw err;
      report.failed++;
      report.errors.push({ line: i + 1, error: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) });
    }
  }
  return report;
}
