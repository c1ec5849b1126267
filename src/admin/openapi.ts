// OpenAPI 3.1 description of the admin and self-service APIs, generated from
// the same zod schemas that validate the requests.
import { createDocument } from 'zod-openapi';
import { auditPaths } from './audit.ts';
import { clientsPaths } from './clients.ts';
import { selfServicePaths } from './self-service.ts';
import { usersPaths } from './users.ts';

let cached: ReturnType<typeof createDocument> | undefined;

export function openApiDocument(): ReturnType<typeof createDocument> {
  return (cached ??= createDocument({
    openapi: '3.1.0',
    info: {
      title: 'Identity service: admin and account API',
      version: '1.0.0',
      description:
        'Admin API on the admin port (ADMIN_PORT), authorized by a Bearer access token of a user with the admin role. ' +
        'Self-service endpoints (tag self-service) are on the public port.',
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
    paths: { ...usersPaths, ...clientsPaths, ...auditPaths, ...selfServicePaths },
  }));
}
