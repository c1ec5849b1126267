// The public port: oidc-provider's endpoints (discovery, /token, /jwks,
// introspection, revocation) behind helmet and the request log.
import express, { type ErrorRequestHandler } from 'express';
import helmet from 'helmet';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../observability/log.ts';
import type { Metrics } from '../observability/metrics.ts';
import { jsonErrorHandler } from './errors.ts';
import { inputHardening } from './input-hardening.ts';
import { assignRequestId, requestId } from './request-id.ts';
import { requestLogger } from './request-log.ts';

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** `provider`: oidc-provider or anything with its callback(); `jwks`: served before it (see src/tokens/key-rotation.ts). */
export function createPublicApp(
  provider: { callback(): NodeHandler },
  logger: Logger,
  jwks?: NodeHandler,
  opts: {
    trustProxyHops: number;
    maxBodyBytes: number;
    corsOrigins: readonly string[];
    accountRoutes?: express.Router;
    metrics?: Metrics;
    /** Sheds password grants while the hash gate is full (src/http/shed-door.ts). */
    shedDoor?: express.RequestHandler;
  } = {
    trustProxyHops: 0,
    maxBodyBytes: 16_384,
    corsOrigins: [],
  },
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

  // Self-service JSON endpoints (register, password reset and change): they
  // parse and validate their own bounded JSON bodies.
  if (opts.accountRoutes) app.use(opts.accountRoutes);

  // oidc-provider parses its own bodies; this only validates them first.
  app.use(inputHardening(opts.maxBodyBytes));
  if (opts.shedDoor) app.use(opts.shedDoor);

  if (jwks) {
    const serve = withCors(jwks, opts.corsOrigins);
    app.get('/jwks', (req, res) => serve(req, res));
  }
  app.use(provider.callback());
  app.use(jsonErrorHandler(logger, opts.metrics) as ErrorRequestHandler);
  return app;
}

/**
 * The public port's request listener. GET /jwks is the hottest read of the
 * service (every downstream verifier): it is answered here from the
 * pre-serialized key set with helmet's headers and the CORS allowlist,
 * without express routing or body handling. Like the health probes it gets
 * a request id but no log line: machines fetch it, and logging every fetch
 * cost two thirds of its throughput (npm run bench). GET /verify (the
 * forward-auth endpoint, src/api/forward-auth.ts, called by gateways for
 * every request they pass, which they log themselves) is served the same
 * way, with its query string and without CORS. Everything else, /jwks with
 * a query string included, goes to the express app.
 */
export function publicListener(
  app: express.Express,
  jwks: JwksHandler,
  corsOrigins: readonly string[],
  forwardAuth?: NodeHandler,
): (req: IncomingMessage, res: ServerResponse) => void {
  const securityHeaders = helmet();
  const fixed = fixedHeaders(securityHeaders);
  const allowed = new Set(corsOrigins);
  return (req, res) => {
    const get = req.method === 'GET' || req.method === 'HEAD';
    if (get && req.url === '/jwks') {
      // Every header in one writeHead (no per-header setHeader): the same
      // headers the express route sends.
      const headers = [...fixed, 'X-Request-Id', assignRequestId(req)];
      const origin = req.headers.origin;
      if (origin && allowed.has(origin)) headers.push('Access-Control-Allow-Origin', origin);
      if (allowed.size) headers.push('Vary', 'Origin');
      jwks(req, res, headers);
      return;
    }
    if (get && forwardAuth && (req.url === '/verify' || req.url?.startsWith('/verify?'))) {
      securityHeaders(req, res, () => {
        requestId(req, res);
        forwardAuth(req, res);
      });
      return;
    }
    app(req, res);
  };
}

type JwksHandler = (req: IncomingMessage, res: ServerResponse, headers?: string[]) => void;

/** The headers helmet sets, captured once: with a fixed configuration they do not depend on the request. */
function fixedHeaders(middleware: (req: IncomingMessage, res: ServerResponse, next: () => void) => void): string[] {
  const headers: string[] = [];
  const capture = {
    setHeader: (name: string, value: string) => void headers.push(name, String(value)),
    removeHeader: () => undefined,
    getHeader: () => undefined,
  };
  middleware({ headers: {} } as IncomingMessage, capture as unknown as ServerResponse, () => undefined);
  return headers;
}

// The JWKS gets the provider routes' CORS rule (src/tokens/provider.ts): only
// allow-listed origins, echoed alone, never with credentials.
function withCors(handler: NodeHandler, corsOrigins: readonly string[]): NodeHandler {
  const allowed = new Set(corsOrigins);
  return (req, res) => {
    const origin = req.headers.origin;
    if (origin && allowed.has(origin)) res.setHeader('Access-Control-Allow-Origin', origin);
    if (allowed.size) res.setHeader('Vary', 'Origin');
    handler(req, res);
  };
}
