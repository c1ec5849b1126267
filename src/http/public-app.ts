// The public port: oidc-provider's endpoints (discovery, /token, /jwks,
// introspection, revocation) behind helmet and the request log.
import express, { type ErrorRequestHandler } from 'express';
import helmet from 'helmet';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pinoHttp } from 'pino-http';
import type { Logger } from '../log.ts';
import { jsonErrorHandler } from './errors.ts';

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** `provider`: oidc-provider or anything with its callback(); `jwks`: served before it (see src/keys/rotation.ts). */
export function createPublicApp(provider: { callback(): NodeHandler }, logger: Logger, jwks?: NodeHandler): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(helmet());
  app.use(
    pinoHttp({
      logger,
      quietReqLogger: true,
      // Method, path and status only: never bodies, query strings or headers.
      serializers: {
        req: (req: { id: unknown; method: string; url: string; remoteAddress?: string }) => ({
          id: req.id,
          method: req.method,
          path: req.url.split('?')[0],
          remoteAddress: req.remoteAddress,
        }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
    }),
  );

  // RFC 8414 metadata: the same document as OpenID discovery, which
  // oidc-provider serves and keeps in step with its configuration.
  app.get('/.well-known/oauth-authorization-server', (req, _res, next) => {
    req.url = '/.well-known/openid-configuration';
    next();
  });

  if (jwks) app.get('/jwks', (req, res) => jwks(req, res));

  // oidc-provider parses its own bodies: no express body parser before it.
  app.use(provider.callback());
  app.use(jsonErrorHandler(logger) as ErrorRequestHandler);
  return app;
}
