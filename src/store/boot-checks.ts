// What a booting service waits for, each answered in one line that names the
// variable to fix and never a password: Postgres reachable at DATABASE_URL,
// its schema up to date with prisma/migrations, Redis reachable.
import { readdir } from 'node:fs/promises';
import pg from 'pg';
import type { Config } from '../config/index.ts';
import { MIGRATIONS_DIR } from './migrate.ts';

/** `DATABASE_URL (host:port/db)`: where, without user or password. */
export function databaseWhere(url: string): string {
  const u = URL.canParse(url) ? new URL(url) : undefined;
  return u ? `DATABASE_URL (${u.host}${u.pathname})` : 'DATABASE_URL';
}

/** `REDIS_URL (host:port)`, or the Sentinel / Cluster variable in use. */
export function redisWhere(config: Config): string {
  const t = config.redisTopology;
  if (!t) return 'REDIS_URL';
  if (t.kind === 'single') return URL.canParse(t.url) ? `REDIS_URL (${new URL(t.url).host})` : 'REDIS_URL';
  const nodes = t.kind === 'sentinel' ? t.sentinels : t.nodes;
  return `${t.kind === 'sentinel' ? 'REDIS_SENTINELS' : 'REDIS_CLUSTER_NODES'} (${nodes.map((n) => `${n.host}:${n.port}`).join(',')})`;
}

/** An error's short class: its code (ECONNREFUSED, 28P01, 3D000…) or its message. */
export function errorClass(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  return typeof e?.code === 'string' && e.code ? e.code : String(e?.message ?? err);
}

/** The class, and the message too when it adds something (a refused login names the user, never the password). */
const detail = (err: unknown, cls: string) => {
  const message = String((err as Error)?.message ?? '');
  return message.includes(cls) || !message ? cls : `${cls}: ${message}`;
};

export type Problem = { class: string; line: string };

/**
 * Undefined when Postgres answers and every migration in prisma/migrations is
 * applied; otherwise the problem, in one line.
 */
export async function databaseProblem(url: string, dir: string = MIGRATIONS_DIR): Promise<Problem | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {}); // a connection lost after connect: the query below fails instead
  try {
    await client.connect();
  } catch (err) {
    const cls = errorClass(err);
    await client.end().catch(() => {});
    return { class: `postgres:${cls}`, line: `Postgres at ${databaseWhere(url)} is unreachable: ${detail(err, cls)}` };
  }
  try {
    const names = (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    const table = await client.query<{ t: string | null }>(`SELECT to_regclass('"_prisma_migrations"')::text AS t`);
    const applied = new Set<string>();
    if (table.rows[0]?.t) {
      const { rows } = await client.query<{ migration_name: string }>(
        'SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL',
      );
      for (const r of rows) applied.add(r.migration_name);
    }
    const behind = names.filter((n) => !applied.has(n)).length;
    if (behind) return { class: `schema:${behind}`, line: `schema is behind by ${behind} migration${behind === 1 ? '' : 's'}: run \`identity migrate\`` };
    return undefined;
  } catch (err) {
    return { class: `postgres:${errorClass(err)}`, line: `Postgres at ${databaseWhere(url)} failed a query: ${detail(err, errorClass(err))}` };
  } finally {
    await client.end().catch(() => {});
  }
}
