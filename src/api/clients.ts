// /admin/clients: list, get, create (the secret is shown once), update grant
// types and scopes, rotate the secret, delete. Auditing happens in src/clients.
import { z } from 'zod';
import { clientInput, GRANT_TYPES, type Clients } from '../clients/index.ts';
import { route } from '../http/route.ts';

const clientId = z.object({ id: clientInput.shape.id.meta({ description: 'client id' }) });
const scope = z.string().max(2000).meta({ description: 'space-separated scopes from SCOPES', example: 'api:read api:write' });
const scopes = (s: string | undefined) => (s === undefined ? undefined : s.split(/\s+/).filter(Boolean));
const allowedResources = z
  .array(z.string().max(2000))
  .max(16)
  .meta({ description: 'resource indicators (RFC 8707) the client may request besides TOKEN_AUDIENCE: ADMIN_AUDIENCE for an admin console' });

const dpopBound = z.boolean().meta({ description: 'RFC 9449 §5.2: token requests without a DPoP proof are refused' });
const firstParty = z.boolean().meta({ description: 'a first-party client: may use the Authorization Challenge Endpoint (README "Second factor")' });

const clientSchema = z
  .object({
    client_id: z.string(),
    grant_types: z.array(z.string()),
    scope: z.string(),
    trusted_gateway: z.boolean(),
    allowed_resources: z.array(z.string()).meta({ description: 'resource indicators (RFC 8707) it may request besides TOKEN_AUDIENCE' }),
    dpop_bound_access_tokens: z.boolean(),
    first_party: firstParty,
    created_at: z.iso.datetime(),
  })
  .meta({ id: 'Client' });
const withSecret = clientSchema
  .extend({ client_secret: z.string().meta({ description: 'shown this one time only' }) })
  .meta({ id: 'ClientWithSecret' });

const createBody = z
  .strictObject({
    client_id: clientInput.shape.id,
    grant_types: z.array(z.enum(GRANT_TYPES)).min(1),
    scope: scope.default(''),
    trusted_gateway: z.boolean().default(false).meta({ description: 'may send the end user IP (X-End-User-IP)' }),
    allowed_resources: allowedResources.default([]),
    dpop_bound_access_tokens: dpopBound.default(false),
    first_party: firstParty.default(false),
  })
  .meta({ id: 'ClientCreate' });
const updateBody = z
  .strictObject({
    grant_types: z.array(z.enum(GRANT_TYPES)).min(1).optional(),
    scope: scope.optional(),
    allowed_resources: allowedResources.optional(),
    dpop_bound_access_tokens: dpopBound.optional(),
    first_party: firstParty.optional(),
  })
  .refine(
    (b) =>
      b.grant_types !== undefined ||
      b.scope !== undefined ||
      b.allowed_resources !== undefined ||
      b.first_party !== undefined ||
      b.dpop_bound_access_tokens !== undefined,
    'give grant_types, scope, allowed_resources, first_party and/or dpop_bound_access_tokens',
  )
  .meta({ id: 'ClientUpdate' });
const rotateBody = z
  .strictObject({
    revoke_sessions: z
      .boolean()
      .default(false)
      .meta({ description: "true: every refresh token of the client stops working too (default: the client's sessions are kept)" }),
  })
  .optional()
  .meta({ id: 'ClientSecretRotation' });

const tags = ['clients'];

export function clientRoutes(clients: Clients) {
  return [
    route({
      method: 'get',
      path: '/admin/clients',
      operationId: 'listClients',
      summary: 'List OAuth clients',
      tags,
      auth: 'admin',
      response: { status: 200, description: 'Clients', schema: z.object({ items: z.array(clientSchema) }) },
      handle: async () => ({ items: await clients.list() }),
    }),
    route({
      method: 'post',
      path: '/admin/clients',
      operationId: 'createClient',
      summary: 'Create a confidential client; the response holds its secret, once',
      tags,
      auth: 'admin',
      body: createBody,
      response: { status: 201, description: 'Created', schema: withSecret },
      errors: [409],
      handle: ({ body, meta }) =>
        clients.create(
          {
            id: body.client_id,
            grantTypes: body.grant_types,
            scopes: scopes(body.scope),
            trustedGateway: body.trusted_gateway,
            firstParty: body.first_party,
            resources: body.allowed_resources,
            dpopBound: body.dpop_bound_access_tokens,
          },
          meta,
        ),
    }),
    route({
      method: 'get',
      path: '/admin/clients/{id}',
      operationId: 'getClient',
      summary: 'Get one client (never its secret)',
      tags,
      auth: 'admin',
      params: clientId,
      response: { status: 200, description: 'The client', schema: clientSchema },
      errors: [404],
      handle: ({ params }) => clients.get(params.id),
    }),
    route({
      method: 'patch',
      path: '/admin/clients/{id}',
      operationId: 'updateClient',
      summary: 'Change grant types, scope, allowed resources, the first-party flag and/or dpop_bound_access_tokens',
      tags,
      auth: 'admin',
      params: clientId,
      body: updateBody,
      response: { status: 200, description: 'Updated', schema: clientSchema },
      errors: [404],
      handle: ({ params, body, meta }) =>
        clients.update(
          params.id,
          {
            grantTypes: body.grant_types,
            scopes: scopes(body.scope),
            resources: body.allowed_resources,
            firstParty: body.first_party,
            dpopBound: body.dpop_bound_access_tokens,
          },
          meta,
        ),
    }),
    route({
      method: 'delete',
      path: '/admin/clients/{id}',
      operationId: 'deleteClient',
      summary: 'Delete a client; its refresh tokens stop working, also if the id is created again',
      tags,
      auth: 'admin',
      params: clientId,
      response: { status: 204, description: 'Deleted' },
      errors: [404],
      handle: ({ params, meta }) => clients.delete(params.id, meta),
    }),
    route({
      method: 'post',
      path: '/admin/clients/{id}/rotate-secret',
      operationId: 'rotateClientSecret',
      summary: 'Replace the secret (the old one stops working at once; sessions are kept unless revoke_sessions); the new one is shown once',
      tags,
      auth: 'admin',
      params: clientId,
      body: rotateBody,
      response: { status: 200, description: 'Rotated', schema: withSecret },
      errors: [404],
      handle: ({ params, body, meta }) => clients.rotateSecret(params.id, meta, { revokeSessions: body?.revoke_sessions }),
    }),
  ];
}
