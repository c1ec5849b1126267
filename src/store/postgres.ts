// Prisma over the plain `pg` driver (Prisma 7 driver adapter): no native query
// engine, works offline and against PGlite's Postgres socket alike.
//
// Every query goes through one extension that sorts its failures: a data
// error the caller handles (unique violation, row not found) or a bug (a
// query Prisma refuses to build) passes through unchanged; anything else means
// Postgres could not answer, and becomes StoreUnavailable('postgres'): a 503
// with Retry-After, counted as a Postgres error, on every route.
import { PrismaPg } from '@prisma/adapter-pg';
import { isProgrammingError, ServiceError, StoreUnavailable } from '../errors.ts';
import { Prisma, PrismaClient } from '../generated/prisma/client.ts';

// Driver-level failures Prisma reports as "known" errors although they mean
// the database is out of reach (or its schema is not there yet).
const UNREACHABLE_KINDS = new Set([
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout',
  'TooManyConnections',
  'TlsConnectionError',
  'DatabaseDoesNotExist',
  'DatabaseAccessDenied',
  'AuthenticationFailed',
  'TableDoesNotExist',
  'ColumnNotFound',
]);
// SQLSTATE classes: 08 connection exception, 53 insufficient resources,
// 57 operator intervention (shutdown, cancel), 58 system error.
const UNREACHABLE_SQLSTATE = /^(08|53|57|58)/;

/** True when a Prisma error means "Postgres could not answer", not "bad data" or "bad query". */
export function isPostgresUnavailable(err: unknown): boolean {
  if (err instanceof ServiceError || isProgrammingError(err)) return false;
  if (err instanceof Prisma.PrismaClientValidationError) return false; // a bug in our query
  if (err instanceof Prisma.PrismaClientKnownRequestError) {
    if (err.code.startsWith('P1') || err.code === 'P2024') return true; // connection, pool timeout
    const cause = (err.meta?.driverAdapterError as { cause?: { kind?: string; code?: string; originalCode?: string } } | undefined)
      ?.cause;
    if (!cause) return false;
    if (cause.kind && UNREACHABLE_KINDS.has(cause.kind)) return true;
    return UNREACHABLE_SQLSTATE.test(cause.originalCode ?? cause.code ?? '');
  }
  // Unknown request errors, initialization errors, and the driver's own
  // connection errors (pg rethrows "Connection terminated" as plain Errors).
  return true;
}

function tagged(err: unknown): never {
  throw isPostgresUnavailable(err) ? new StoreUnavailable('postgres', err) : err;
}

export function createDb(url: string, poolMax: number) {
  const adapter = new PrismaPg({
    connectionString: url,
    max: poolMax,
    // Fail fast when Postgres is unreachable instead of queueing logins.
    connectionTimeoutMillis: 2000,
  });
  const client = new PrismaClient({ adapter });
  // An interactive transaction (under an advisory lock when `lockKey` is
  // given) whose failures, start-up included, are tagged like any query's.
  const transaction = async <T>(fn: (tx: Prisma.TransactionClient) => Promise<T>, lockKey?: number): Promise<T> => {
    try {
      return await client.$transaction(
        async (tx) => {
          if (lockKey !== undefined) await tx.$executeRaw`SELECT pg_advisory_xact_lock(${lockKey})`;
          return fn(tx);
        },
        { maxWait: 10_000, timeout: 30_000 },
      );
    } catch (err) {
      return tagged(err);
    }
  };
  return client.$extends({
    query: {
      async $allOperations({ args, query }) {
        try {
          return await query(args);
        } catch (err) {
          return tagged(err);
        }
      },
    },
    client: {
      /** One transaction: every statement in `fn` commits, or none does. */
      $atomic<T>(fn: (tx: Prisma.TransactionClient) => Promise<T>): Promise<T> {
        return transaction(fn);
      },
      /** $atomic under a transaction-scoped advisory lock. */
      $locked<T>(fn: (tx: Prisma.TransactionClient) => Promise<T>, lockKey: number): Promise<T> {
        return transaction(fn, lockKey);
      },
    },
  });
}

export type Db = ReturnType<typeof createDb>;
export type Tx = Prisma.TransactionClient;
