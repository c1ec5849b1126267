// The request id: the caller's X-Request-Id when it is sane (a gateway's trace
// id: 1-128 characters of A-Z a-z 0-9 . _ : -), otherwise a new UUID. Set on
// the request (req.id, which the log, the audit rows and oidc-provider's
// error log read) and echoed in the response's X-Request-Id.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestId(req: IncomingMessage, res: ServerResponse): string {
  const existing = (req as { id?: unknown }).id;
  if (typeof existing === 'string') return existing;
  const id = assignRequestId(req);
  res.setHeader('X-Request-Id', id);
  return id;
}

/** The id alone, set on the request; the caller sends the X-Request-Id header. */
export function assignRequestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
  (req as { id?: string }).id = id;
  return id;
}
