// The admin port: never exposed through the public Service. Health probes
// for now; the admin API and metrics mount here too.
import express from 'express';
import helmet from 'helmet';
import type { Logger } from '../log.ts';
import { jsonErrorHandler } from './errors.ts';

export type Readiness = () => Promise<Record<string, boolean>>;

export function createAdminApp(readiness: Readiness, api?: { router: express.Router; logger: Logger }): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(helmet());
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
  if (api) app.use('/admin', api.router);
  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found', message: 'no such route' });
  });
  if (api) app.use(jsonErrorHandler(api.logger) as express.ErrorRequestHandler);
  return app;
}
