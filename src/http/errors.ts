// The JSON APIs' error answer (admin port, self-service routes): the
// catalogue's shape (src/errors.ts) with Retry-After on 429/503 and an RFC 6750
// challenge on 401/403. A store outage is a 503 counted against that store; a
// bug is a 500 with the request id, logged at error level, never a stack trace.
import type { NextFunction, Request, Response } from 'express';
import { asServiceError, ServiceError, StoreUnavailable, type ApiErrorBody, type ErrorCode } from '../errors.ts';
import type { Logger } from '../observability/log.ts';
import { countStoreError, type Metrics } from '../observability/metrics.ts';
import { requestId } from './request-id.ts';

// body-parser's stable error types (err.type) for bodies it refuses.
const BODY_ERRORS: Record<string, ErrorCode> = {
  'entity.too.large': 'payload_too_large',
  'entity.parse.failed': 'validation_failed',
  'encoding.unsupported': 'unsupported_media_type',
  'charset.unsupported': 'unsupported_media_type',
  'request.aborted': 'invalid_request',
  'request.size.invalid': 'invalid_request',
  'entity.verify.failed': 'invalid_request',
};

/** What the client is told about a thrown value. */
export function toServiceError(err: unknown): ServiceError {
  if (err instanceof ServiceError) return err;
  const type = (err as { type?: unknown })?.type;
  if (typeof type === 'string' && BODY_ERRORS[type]) {
    const code = BODY_ERRORS[type];
    return new ServiceError(code, `body: ${(err as Error).message || 'malformed request body'}`, {
      cause: err,
      ...(code === 'validation_failed' ? { field: 'body' } : {}),
    });
  }
  // Other client errors express and body-parser raise (http-errors: a 4xx
  // status marked safe to expose), such as a corrupt gzip body.
  const { status, expose } = (err ?? {}) as { status?: unknown; expose?: unknown };
  if (expose === true && typeof status === 'number' && status >= 400 && status < 500) {
    const code: ErrorCode = status === 413 ? 'payload_too_large' : status === 415 ? 'unsupported_media_type' : 'invalid_request';
    return new ServiceError(code, (err as Error).message || 'malformed request', { cause: err });
  }
  return asServiceError(err);
}

/** RFC 6750 §3: the challenge for a bearer-protected route. */
export function bearerChallenge(code: ErrorCode, description: string): string | undefined {
  if (code === 'unauthorized') return 'Bearer';
  if (code === 'invalid_token' || code === 'insufficient_scope') {
    return `Bearer error="${code}", error_description="${description.replace(/["\\]/g, '')}"`;
  }
  return undefined;
}

export function sendError(req: Request, res: Response, err: ServiceError): void {
  const body: ApiErrorBody = err.toJSON();
  if (err.code === 'server_error') body.request_id = requestId(req, res);
  if (err.retryAfter !== undefined) res.set('Retry-After', String(err.retryAfter));
  const challenge = bearerChallenge(err.code, err.message);
  if (challenge) res.set('WWW-Authenticate', challenge);
  if (err.status === 413) res.set('Connection', 'close');
  res.status(err.status).set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' }).json(body);
}

// How Node and body-parser report a request whose client went away mid-body.
const CLIENT_GONE = new Set(['ECONNRESET', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

/** The client closed the connection before its request was read: nobody to answer, and no fault of ours. */
export function isClientAbort(err: unknown, req: { destroyed: boolean }): boolean {
  const { code, type } = (err ?? {}) as { code?: unknown; type?: unknown };
  return req.destroyed && (type === 'request.aborted' || (typeof code === 'string' && CLIENT_GONE.has(code)));
}

/** The last error handler of the JSON APIs. */
export function jsonErrorHandler(logger: Logger, metrics?: Metrics) {
  return (err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (isClientAbort(err, req)) {
      logger.debug({ reqId: requestId(req, res) }, 'client closed the connection before its request was read');
      return;
    }
    if (res.headersSent) return next(err);
    const out = toServiceError(err);
    if (out instanceof StoreUnavailable) {
      if (metrics) countStoreError(metrics, out.store);
      logger.warn({ store: out.store, reqId: requestId(req, res), err: { message: (out.cause as Error | undefined)?.message } }, `${out.store} unavailable`);
    } else if (out.code === 'server_error') {
      logger.error({ err, reqId: requestId(req, res) }, 'unhandled error');
    }
    sendError(req, res, out);
  };
}
