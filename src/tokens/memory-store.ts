// Development without Redis: oidc-provider's own in-memory adapter, plus a
// per-account grant index kept in this process (exactly as long-lived as that
// store), so that a user's sessions can still be revoked at once.
import type { Adapter } from 'oidc-provider';
import type { SessionRevoker } from '../accounts/lifecycle.ts';

type AdapterClass = new (model: string) => Adapter;

export type MemoryTokenStore = SessionRevoker & { adapterFor(model: string): Adapter };

export async function memoryTokenStore(): Promise<MemoryTokenStore> {
  const { default: MemoryAdapter } = (await import('oidc-provider/lib/adapters/memory_adapter.js' as string)) as { default: AdapterClass };
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
