// The admin port: never exposed through the public Service. Health probes,
// metrics and the admin API (/admin).
import express from 'express';
import { ServiceError } from '../errors.ts';
import helmet from 'helmet';
import type { Logger } from '../observability/log.ts';
import type { Metrics } from '../observability/metrics.ts';
import { jsonErrorHandler } from './errors.ts';
import { requestLogger } from './request-log.ts';

export type Readiness = () => Promise<Record<string, boolean>>;

const PROBES = ['/health/alive', '/livez', '/health/ready', '/readyz'];

/** `ops.api`: the admin REST API (src/api), whose routes start with /admin. */
export function createAdminApp(
  readiness: Readiness,
  ops: { logger: Logger; metrics?: Metrics; api?: express.Router },
): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(helmet());
  app.use(requestLogger(ops.logger, [...PROBES, '/metrics']));
  const alive: express.RequestHandler = (_req, res) => {
    res.json({ status: 'ok' });
  };
  const ready: express.RequestHandler = async (_req, res) => {
    const checks = await readiness();
    const ok = Object.values(checks).every(Boolean);
    res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', checks });
  };
  app.get(['/health/alive', '/livez'], alive);
  app.get(['/health/ready', '/readyz'], ready);
  const registry = ops.metrics?.registry;
  if (registry) {
    app.get('/metrics', async (_req, res) => {
      res.type(registry.contentType).send(await registry.metrics());
    });
  }
  if (ops.api) app.use(ops.api);
  app.use(() => {
    throw new ServiceError('not_found', 'no such route');
  });
  app.use(jsonErrorHandler(ops.logger, ops.metrics) as express.ErrorRequestHandler);
  return app;
}
