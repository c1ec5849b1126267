// Request log (pino-http): one JSON line per request with method, path,
// status and request id. Never bodies, query strings or headers, so secrets
// cannot reach it.
import { pinoHttp } from 'pino-http';
import type { Logger } from '../observability/log.ts';
import { requestId } from './request-id.ts';
import { UNLOGGED } from './shed-door.ts';

/** `quiet`: paths never logged (probes, metrics scrapes). */
export function requestLogger(logger: Logger, quiet: readonly string[] = []) {
  const skip = new Set(quiet);
  return pinoHttp({
    logger,
    quietReqLogger: true,
    genReqId: requestId,
    autoLogging: { ignore: (req) => skip.has((req.url ?? '').split('?')[0]!) },
    // Every answer at info (pino-http's default), except those marked
    // unlogged (shed logins: counted and sampled instead).
    customLogLevel: (_req, res) => ((res as { locals?: Record<string, unknown> }).locals?.[UNLOGGED] ? 'silent' : 'info'),
    serializers: {
      req: (req: { id: unknown; method: string; url: string; remoteAddress?: string }) => ({
        id: req.id,
        method: req.method,
        path: req.url.split('?')[0],
        remoteAddress: req.remoteAddress,
      }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  });
}
