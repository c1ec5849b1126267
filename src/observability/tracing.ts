// OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set. Preloaded before the app with
// `node --import ./src/observability/tracing.ts` (npm start, bin/identity.js
// and the image's CMD do it), because the ESM hook that lets the
// instrumentations patch ioredis and pg must be registered before those
// modules load. Everything else comes from the standard OTEL_* variables
// (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_HEADERS,
// OTEL_TRACES_SAMPLER…), read by the SDK itself.
//
// One trace per HTTP request: the server span (with the request id), Redis
// commands, Postgres queries and password hashing (src/accounts/passwords.ts)
// as its children. Never a secret: Redis spans carry the command name only,
// Postgres spans the parameterised SQL (no values), HTTP spans the path
// without its query string and no headers.
import { register } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';

const endpoint = process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
const UNTRACED = new Set(['/livez', '/readyz', '/health/alive', '/health/ready', '/metrics']);

if (endpoint) {
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);
  const [{ NodeSDK }, { HttpInstrumentation }, { IORedisInstrumentation }, { PgInstrumentation }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-ioredis'),
    import('@opentelemetry/instrumentation-pg'),
  ]);
  const pathOf = (url: string | undefined) => (url ?? '/').split('?')[0]!;
  const sdk = new NodeSDK({
    serviceName: process.env.OTEL_SERVICE_NAME || 'identity-service',
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => UNTRACED.has(pathOf(req.url)),
        // Outgoing calls (mail, webhooks) are not part of a request's story here.
        ignoreOutgoingRequestHook: () => true,
        applyCustomAttributesOnSpan: (span, req, res) => {
          if (!('headers' in req) || !('getHeader' in res)) return;
          const incoming = req as IncomingMessage;
          const path = pathOf(incoming.url);
          // Overwrite what the instrumentation recorded with the query string.
          span.setAttributes({ 'http.target': path, 'url.path': path, 'http.url': path });
          const id = (res as ServerResponse).getHeader('x-request-id');
          if (typeof id === 'string') span.setAttribute('identity.request_id', id);
        },
      }),
      new IORedisInstrumentation({ dbStatementSerializer: (command) => command }),
      new PgInstrumentation({ enhancedDatabaseReporting: false }),
    ],
  });
  sdk.start();
  // Flush what is buffered when the process ends (the service exits after a graceful shutdown).
  const flush = () => void sdk.shutdown().catch(() => {});
  process.once('beforeExit', flush);
}
