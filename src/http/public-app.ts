// The public port: oidc-provider's endpoints (discovery, /token, /jwks,
// introspection, revocation) behind helmet and the request log.
import express, { type ErrorRequestHandler } from 'express';
import helmet from 'helmet';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.ts';
import { jsonErrorHandler } from './errors.ts';
import { inputHardening } from './input-hardening.ts';
import { requestLogger } from './request-log.ts';

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** `provider`: oidc-provider or anything with its callback(); `jwks`: served before it (see src/keys/rotation.ts). */
export function createPublicApp(
  provider: { callback(): NodeHandler },
  logger: Logger,
  jwks?: NodeHandler,
  opts: { trustProxyHops: number; maxBodyBytes: number } = { trustProxyHops: 0, maxBodyBytes: 16_384 },
): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', opts.trustProxyHops);
  app.use(helmet());
  app.use(requestLogger(logger));

  // RFC 8414 metadata: the same document as OpenID discovery, which
  // oidc-provider serves and keeps in step with its configuration.
  app.get('/.well-known/oauth-authorization-server', (req, _res, next) => {
    req.url = '/.well-known/openid-configuration';
    next();
  });

  if (jwks) app.get('/jwks', (req, res) => jwks(req, res));

  // oidc-provider parses its own bodies; this only validates them first.
  app.use(inputHardening(opts.maxBodyBytes));
  app.use(provider.callback());
  app.use(jsonErrorHandler(logger) as ErrorRequestHandler);
  return app;
}
