// ioredis set up to fail closed and fast: no offline queue (a command while
// Redis is down rejects at once instead of waiting forever), a per-command
// timeout, and endless background reconnects so service resumes by itself.
import { Redis } from 'ioredis';

export function createRedis(url: string, commandTimeoutMs: number): Redis {
  return new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    commandTimeout: commandTimeoutMs,
    connectTimeout: 2000,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
  });
}
