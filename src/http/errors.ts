// Last-resort error handler for express routes outside oidc-provider: a JSON
// body with a stable code, never a stack trace.
import type { NextFunction, Request, Response } from 'express';
import { ServiceError } from '../errors.ts';
import type { Logger } from '../log.ts';

export function jsonErrorHandler(logger: Logger) {
  return (err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const known =
      err instanceof ServiceError
        ? err
        : (err as { type?: string }).type === 'entity.too.large'
          ? new ServiceError('validation_failed', 'request body too large')
          : (err as { status?: number }).status === 400
            ? new ServiceError('validation_failed', 'malformed request')
            : null;
    if (!known) logger.error({ err }, 'unhandled error');
    const out = known ?? new ServiceError('internal', 'internal error');
    res.status(out.status).json(out.toJSON());
  };
}
