// Development without Redis: oidc-provider's own in-memory adapter, plus
// per-account and per-client grant indexes kept in this process (exactly as
// long-lived as that store), so that clean-up after a revocation frees them.
// Revocation itself does not depend on it (src/tokens/sessions.ts).
import type { Adapter } from 'oidc-provider';
import type { SessionCleanup } from '../accounts/lifecycle.ts';
import type { ClientSessionCleanup } from '../clients/index.ts';

type AdapterClass = new (model: string) => Adapter;

export type MemoryTokenStore = SessionCleanup & ClientSessionCleanup & { adapterFor(model: string): Adapter };

export async function memoryTokenStore(): Promise<MemoryTokenStore> {
  const { default: MemoryAdapter } = (await import('oidc-provider/lib/adapters/memory_adapter.js' as string)) as { default: AdapterClass };
  const byAccount = new Map<string, Set<string>>();
  const byClient = new Map<string, Set<string>>();
  const add = (index: Map<string, Set<string>>, key: string | undefined, grantId: string) => {
    if (key) index.set(key, (index.get(key) ?? new Set()).add(grantId));
  };
  const purge = async (index: Map<string, Set<string>>, key: string) => {
    const grants = [...(index.get(key) ?? [])];
    index.delete(key);
    const tokens = new MemoryAdapter('RefreshToken');
    const grantStore = new MemoryAdapter('Grant');
    for (const grantId of grants) {
      await tokens.revokeByGrantId?.(grantId);
      await grantStore.destroy(grantId);
    }
    return grants.length;
  };
  return {
    adapterFor(model) {
      const inner = new MemoryAdapter(model);
      if (model !== 'Grant') return inner;
      const upsert = inner.upsert.bind(inner);
      inner.upsert = async (id, payload, expiresIn) => {
        const { accountId, clientId } = payload as { accountId?: string; clientId?: string };
        add(byAccount, accountId, id);
        add(byClient, clientId, id);
        return upsert(id, payload, expiresIn);
      };
      return inner;
    },
    purgeAccount: (accountId) => purge(byAccount, accountId),
    purgeClient: (clientId) => purge(byClient, clientId),
  };
}
