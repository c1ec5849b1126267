// oidc-provider's read-only view of the clients in Postgres (RFC 7591
// metadata). Clients are managed by src/clients (admin API and CLI), never by
// oidc-provider itself.
import type { Db } from '../store/postgres.ts';
import { atBoundary } from './oidc.ts';

type ClientRow = {
  id: string;
  secretHash: string;
  grantTypes: string[];
  scope: string;
  trustedGateway: boolean;
  sessionEpoch: string;
  allowedResources: string[];
};

export function toClientMetadata(row: ClientRow) {
  return {
    client_id: row.id,
    // Not the secret: its digest. provider.ts makes compareClientSecret hash what is presented.
    client_secret: row.secretHash,
    grant_types: row.grantTypes,
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    ...(row.scope ? { scope: row.scope } : {}),
    trusted_gateway: row.trustedGateway,
    // Read on every token request anyway: refresh compares the grant's stamp
    // with it, and resource indicators are checked against the list.
    session_epoch: row.sessionEpoch,
    allowed_resources: row.allowedResources,
  };
}

export class ClientAdapter {
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
  }

  find(id: string) {
    return atBoundary(async () => {
      const row = await this.#db.client.findUnique({ where: { id } });
      return row ? toClientMetadata(row) : undefined;
    });
  }

  async upsert(): Promise<never> {
    throw new Error('clients are read-only for oidc-provider');
  }

  async destroy(): Promise<never> {
    throw new Error('clients are read-only for oidc-provider');
  }
}
