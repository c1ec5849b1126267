// Request log (pino-http): one JSON line per request with method, path,
// status and request id. Never bodies, query strings or headers, so secrets
// cannot reach it. The request id comes from X-Request-Id when the caller
// sends a sane one (a gateway's trace id), otherwise a new UUID; either way
// it is echoed in the response's X-Request-Id.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pinoHttp } from 'pino-http';
import type { Logger } from '../log.ts';

const REQUEST_ID = /^[A-Za-z0-9._:\-]{1,128}$/;

export function requestId(req: IncomingMessage, res: ServerResponse): string {
  const given = req.headers['x-request-id'];
  const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
  res.setHeader('X-Request-Id', id);
  return id;
}

/** `quiet`: paths never logged (probes, metrics scrapes). */
export function requestLogger(logger: Logger, quiet: readonly string[] = []) {
  const skip = new Set(quiet);
  return pinoHttp({
    logger,
    quietReqLogger: true,
    genReqId: requestId,
    autoLogging: { ignore: (req) => skip.has((req.url ?? '').split('?')[0]!) },
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
