// /admin/clients: list, get, create (the secret is shown once), update grant
// types and scopes, rotate the secret, delete. Every change is audited.
import { Router } from 'express';
import { z } from 'zod';
import type { ZodOpenApiPathsObject } from 'zod-openapi';
import type { AuditLog } from '../accounts/audit.ts';
import type { Db } from '../store/postgres.ts';
import {
  checkScopes,
  clientInput,
  createClient,
  deleteClient,
  getClient,
  GRANT_TYPES,
  listClients,
  rotateClientSecret,
  updateClient,
} from '../tokens/clients.ts';
import { ADMIN_ERRORS, auditMeta, errorResponses, json, parse } from './validate.ts';

const clientId = z.object({ id: clientInput.shape.id.meta({ description: 'client id' }) });
const scope = z.string().max(2000).meta({ description: 'space-separated scopes from SCOPES', example: 'api:read api:write' });
const scopes = (s: string | undefined) => (s === undefined ? undefined : s.split(/\s+/).filter(Boolean));

const clientSchema = z
  .object({ client_id: z.string(), grant_types: z.array(z.string()), scope: z.string(), created_at: z.iso.datetime() })
  .meta({ id: 'Client' });
const withSecret = clientSchema
  .extend({ client_secret: z.string().meta({ description: 'shown this one time only' }) })
  .meta({ id: 'ClientWithSecret' });

const createBody = z
  .strictObject({ client_id: clientInput.shape.id, grant_types: z.array(z.enum(GRANT_TYPES)).min(1), scope: scope.default('') })
  .meta({ id: 'ClientCreate' });
const updateBody = z
  .strictObject({ grant_types: z.array(z.enum(GRANT_TYPES)).min(1).optional(), scope: scope.optional() })
  .refine((b) => b.grant_types !== undefined || b.scope !== undefined, 'give grant_types and/or scope')
  .meta({ id: 'ClientUpdate' });

const tags = ['clients'];
export const clientsPaths: ZodOpenApiPathsObject = {
  '/admin/clients': {
    get: {
      operationId: 'listClients',
      summary: 'List OAuth clients',
      tags,
      responses: { '200': json(z.object({ items: z.array(clientSchema) }), 'Clients'), ...errorResponses(401, 403) },
    },
    post: {
      operationId: 'createClient',
      summary: 'Create a confidential client; the response holds its secret, once',
      tags,
      requestBody: { content: { 'application/json': { schema: createBody } } },
      responses: { '201': json(withSecret, 'Created'), ...errorResponses(...ADMIN_ERRORS, 409) },
    },
  },
  '/admin/clients/{id}': {
    get: {
      operationId: 'getClient',
      summary: 'Get one client (never its secret)',
      tags,
      requestParams: { path: clientId },
      responses: { '200': json(clientSchema, 'The client'), ...errorResponses(...ADMIN_ERRORS, 404) },
    },
    patch: {
      operationId: 'updateClient',
      summary: 'Change grant types and/or scope',
      tags,
      requestParams: { path: clientId },
      requestBody: { content: { 'application/json': { schema: updateBody } } },
      responses: { '200': json(clientSchema, 'Updated'), ...errorResponses(...ADMIN_ERRORS, 404) },
    },
    delete: {
      operationId: 'deleteClient',
      summary: 'Delete a client; its tokens can no longer be refreshed',
      tags,
      requestParams: { path: clientId },
      responses: { '204': { description: 'Deleted' }, ...errorResponses(...ADMIN_ERRORS, 404) },
    },
  },
  '/admin/clients/{id}/rotate-secret': {
    post: {
      operationId: 'rotateClientSecret',
      summary: 'Replace the secret (the old one stops working at once); the new one is shown once',
      tags,
      requestParams: { path: clientId },
      responses: { '200': json(withSecret, 'Rotated'), ...errorResponses(...ADMIN_ERRORS, 404) },
    },
  },
};

export function clientsRouter(db: Db, audit: AuditLog, knownScopes: readonly string[]): Router {
  const r = Router();
  const id = (params: unknown) => parse(clientId, params).id;
  const record = (type: 'client.created' | 'client.updated' | 'client.secret_rotated' | 'client.deleted', subject: string, details?: Record<string, unknown>) =>
    ({ type, subject, ...(details ? { details } : {}) }) as const;

  r.get('/clients', async (_req, res) => {
    res.json({ items: await listClients(db) });
  });
  r.post('/clients', async (req, res) => {
    const body = parse(createBody, req.body);
    checkScopes(scopes(body.scope)!, knownScopes, 'scope');
    const created = await createClient(db, { id: body.client_id, grantTypes: body.grant_types, scopes: scopes(body.scope) }, knownScopes);
    await audit.record({ ...auditMeta(req, res), ...record('client.created', created.client_id, { grant_types: created.grant_types, scope: created.scope }) });
    res.status(201).json(created);
  });
  r.get('/clients/:id', async (req, res) => {
    res.json(await getClient(db, id(req.params)));
  });
  r.patch('/clients/:id', async (req, res) => {
    const clientIdValue = id(req.params);
    const body = parse(updateBody, req.body);
    const updated = await updateClient(db, clientIdValue, { grantTypes: body.grant_types, scopes: scopes(body.scope) }, knownScopes);
    await audit.record({ ...auditMeta(req, res), ...record('client.updated', clientIdValue, { grant_types: updated.grant_types, scope: updated.scope }) });
    res.json(updated);
  });
  r.post('/clients/:id/rotate-secret', async (req, res) => {
    const rotated = await rotateClientSecret(db, id(req.params));
    await audit.record({ ...auditMeta(req, res), ...record('client.secret_rotated', rotated.client_id) });
    res.json(rotated);
  });
  r.delete('/clients/:id', async (req, res) => {
    const clientIdValue = id(req.params);
    await deleteClient(db, clientIdValue);
    await audit.record({ ...auditMeta(req, res), ...record('client.deleted', clientIdValue) });
    res.status(204).end();
  });
  return r;
}
