// The public port: oidc-provider's endpoints (discovery, /token, /jwks,
// introspection, revocation) behind helmet and the request log.
import express, { type ErrorRequestHandler } from 'express';
import helmet from 'helmet';
import type Provider from 'oidc-provider';
import { pinoHttp } from 'pino-http';
import type { Logger } from '../log.ts';
import { jsonErrorHandler } from './errors.ts';

export function createPublicApp(provider: Provider, logger: Logger, accountRoutes?: express.Router): express.Express {
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

  // Self-service JSON endpoints (register, password reset and change).
  if (accountRoutes) app.use(accountRoutes);

  // oidc-provider parses its own bodies: no express body parser before it.
  app.use(provider.callback());
  app.use(jsonErrorHandler(logger) as ErrorRequestHandler);
  return app;
}
