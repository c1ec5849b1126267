// Revoking every grant (refresh token family) of one user at once: on disable,
// delete, password change/reset and on an admin's request. Redis keeps a
// per-account grant index (redis-adapter.ts). Without Redis (development),
// oidc-provider's in-memory adapter has no such index, so the wrapper below
// keeps one in this process, which is exactly as long-lived as that store.
import type { Adapter } from 'oidc-provider';
import type { RedisTokenStore } from '../tokens/redis-adapter.ts';

type AdapterClass = new (model: string) => Adapter;

export type SessionRevoker = {
  /** Revokes all grants of the account; resolves to how many there were. */
  revokeAccount(accountId: string): Promise<number>;
};

export function redisSessions(store: RedisTokenStore): SessionRevoker {
  return { revokeAccount: (accountId) => store.revokeAccount(accountId) };
}

export function memorySessions(MemoryAdapter: AdapterClass): SessionRevoker & { adapterFor(model: string): Adapter } {
  const grantsByAccount = new Map<string, Set<string>>();
  return {
    adapterFor(model) {
      const inner = new MemoryAdapter(model);
      if (model !== 'Grant') return inner;
      const upsert = inner.upsert.bind(inner);
      inner.upsert = async (id, payload, expiresIn) => {
        const accountId = (payload as { accountId?: string }).accountId;
        if (accountId) grantsByAccount.set(accountId, (grantsByAccount.get(accountId) ?? new Set()).add(id));
        return upsert(id, payload, expiresIn);
      };
      return inner;
    },
    async revokeAccount(accountId) {
      const grants = [...(grantsByAccount.get(accountId) ?? [])];
      grantsByAccount.delete(accountId);
      const tokens = new MemoryAdapter('RefreshToken');
      const grantStore = new MemoryAdapter('Grant');
      for (const grantId of grants) {
        await tokens.revokeByGrantId?.(grantId);
        await grantStore.destroy(grantId);
      }
      return grants.length;
    },
  };
}
