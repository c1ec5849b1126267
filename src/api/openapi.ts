// OpenAPI 3.1 description of the admin and self-service APIs, generated from
// the route declarations (src/http/route.ts) that also build the routers.
import { createDocument } from 'zod-openapi';
import { openApiPaths, type Route } from '../http/route.ts';

export function openApiDocument(routes: readonly Route[]): ReturnType<typeof createDocument> {
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'Identity service: admin and account API',
      version: '1.0.0',
      description:
        'Admin API on the admin port (ADMIN_PORT), authorized by a Bearer access token of a user with the admin role. ' +
        'Self-service endpoints (tag self-service) are on the public port. Every error has the Error shape; ' +
        'its `error` is a stable code from the service error catalogue.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/', description: 'the admin port (ADMIN_PORT)' }],
    tags: [
      { name: 'users', description: 'User lifecycle, roles, import, resets' },
      { name: 'clients', description: 'OAuth clients' },
      { name: 'audit', description: 'Audit events' },
      { name: 'self-service', description: 'Registration and password endpoints on the public port' },
    ],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'RFC 9068 access token of this issuer' },
      },
    },
    paths: openApiPaths(routes),
  });
}
