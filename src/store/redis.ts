// ioredis set up to fail closed and fast: no offline queue (a command while
// Redis is down rejects at once instead of waiting forever), a per-command
// timeout, and endless background reconnects so service resumes by itself.
// The same holds for each topology: one node, Sentinel (the client asks the
// sentinels for the current primary on every reconnect) and Cluster.
import { Cluster, Redis, type ChainableCommander, type RedisOptions } from 'ioredis';
import type { RedisTopology } from '../config/index.ts';
import { isProgrammingError, ServiceError, StoreUnavailable } from '../errors.ts';

/** What the rest of the code talks to: one node (or a Sentinel-managed primary), or a Cluster. */
export type RedisClient = Redis | Cluster;

const reconnect = (attempt: number) => Math.min(attempt * 100, 2000);

export function createRedis(topology: RedisTopology, commandTimeoutMs: number): RedisClient {
  const failFast = {
    enableOfflineQueue: false,
    commandTimeout: commandTimeoutMs,
    connectTimeout: 2000,
    maxRetriesPerRequest: 1,
    // Commands issued in the same tick by concurrent requests share one
    // network write: fewer syscalls and round trips on the /token path.
    enableAutoPipelining: true,
  } satisfies RedisOptions;
  switch (topology.kind) {
    case 'single':
      return new Redis(topology.url, { ...failFast, lazyConnect: true, retryStrategy: reconnect });
    case 'sentinel':
      return new Redis({
        ...failFast,
        lazyConnect: true,
        retryStrategy: reconnect,
        sentinels: topology.sentinels.map((s) => ({ ...s })),
        name: topology.name,
        role: 'master',
        password: topology.password,
        sentinelPassword: topology.sentinelPassword,
        // Never give up on the sentinels (the default gives up after a while).
        sentinelRetryStrategy: reconnect,
        // Switch as soon as the sentinels announce a new primary, not only on
        // the next connection error.
        failoverDetector: true,
      });
    case 'cluster': {
      const { enableOfflineQueue, ...perNode } = failFast;
      return new Cluster(
        topology.nodes.map((n) => ({ ...n })),
        {
          lazyConnect: true,
          enableOfflineQueue,
          enableAutoPipelining: perNode.enableAutoPipelining,
          clusterRetryStrategy: reconnect,
          // A command to a node that just died is retried a few times while the
          // slots move; each try is bounded by commandTimeout.
          retryDelayOnFailover: 200,
          maxRedirections: 6,
          redisOptions: { ...perNode, password: topology.password },
        },
      );
    }
  }
}

/** Commands that all touch one hash slot (usually one key). */
export type SlotGroup = (pipe: ChainableCommander) => void;

/**
 * Runs groups of commands, each group confined to one hash slot. On one node
 * that is a single pipeline (one round trip); a Cluster pipeline must stay on
 * one slot group, so there each group is its own pipeline, all in parallel.
 * With `waitReplicas` every group ends with WAIT: the writes are on that many
 * replicas before this resolves, or it throws (a failover cannot lose them).
 */
export async function execBySlot(redis: RedisClient, groups: SlotGroup[], wait?: ReplicaWait): Promise<unknown[]> {
  const run = async (members: SlotGroup[]) => {
    const pipe = redis.pipeline();
    for (const g of members) g(pipe);
    if (wait?.replicas) pipe.wait(wait.replicas, wait.timeoutMs);
    const results = (await pipe.exec()) ?? [];
    const failed = results.find(([err]) => err);
    if (failed) throw failed[0];
    const values = results.map(([, v]) => v);
    if (wait?.replicas) checkAcks(values.pop(), wait);
    return values;
  };
  if (!(redis instanceof Cluster)) return run(groups);
  return (await Promise.all(groups.map((g) => run([g])))).flat();
}

export type ReplicaWait = Readonly<{ replicas: number; timeoutMs: number }>;

export function checkAcks(acks: unknown, wait: ReplicaWait): void {
  if (typeof acks !== 'number' || acks < wait.replicas) {
    throw new Error(`only ${String(acks)} of ${wait.replicas} replicas acknowledged the write`);
  }
}

// Redis reply errors carry their code as the first word (RESP). These mean a
// bug in our commands, not an unavailable store.
const BUG_REPLY = /^(ERR|WRONGTYPE) /;

/**
 * Runs Redis commands and turns their failures (connection closed, command
 * timeout, READONLY/NOREPLICAS/CLUSTERDOWN during a failover, too few replica
 * acknowledgements) into StoreUnavailable('redis'). Wrap only the Redis calls:
 * programming errors and reply errors that mean a bug pass through as 500s.
 */
export async function redisCall<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof ServiceError || isProgrammingError(err)) throw err;
    if (err instanceof Error && err.name === 'ReplyError' && BUG_REPLY.test(err.message)) throw err;
    throw new StoreUnavailable('redis', err);
  }
}
