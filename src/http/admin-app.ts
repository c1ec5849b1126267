// The admin port: never exposed through the public Service. Health probes
// for now; the admin API and metrics mount here too.
import express from 'express';
import helmet from 'helmet';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.ts';
import { requestLogger } from './request-log.ts';

export type Readiness = () => Promise<Record<string, boolean>>;

const PROBES = ['/health/alive', '/livez', '/health/ready', '/readyz'];

export function createAdminApp(readiness: Readiness, ops: { logger?: Logger; registry?: Registry } = {}): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(helmet());
  if (ops.logger) app.use(requestLogger(ops.logger, [...PROBES, '/metrics']));
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
  const { registry } = ops;
  if (registry) {
    app.get('/metrics', async (_req, res) => {
      res.type(registry.contentType).send(await registry.metrics());
    });
  }
  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found', message: 'no such route' });
  });
  return app;
}
