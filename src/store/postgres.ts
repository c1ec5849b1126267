// Prisma over the plain `pg` driver (Prisma 7 driver adapter): no native query
// engine, works offline and against PGlite's Postgres socket alike.
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client.ts';

export type Db = PrismaClient;

export function createDb(url: string, poolMax: number): Db {
  const adapter = new PrismaPg({
    connectionString: url,
    max: poolMax,
    // Fail fast when Postgres is unreachable instead of queueing logins.
    connectionTimeoutMillis: 2000,
  });
  return new PrismaClient({ adapter });
}

/** True when an error means "the database could not be reached", not "bad query". */
export function isDbUnavailable(err: unknown): boolean {
  const text = String((err as { code?: unknown })?.code ?? '') + ' ' + String((err as Error)?.message ?? '');
  return /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|timeout exceeded when trying to connect|Connection terminated|P1001|P1017|DatabaseNotReachable|57P0[123]/i.test(
    text,
  );
}
