// Which IP a login comes from. The socket address, or the X-Forwarded-For
// entry TRUST_PROXY_HOPS hops back (oidc-provider is a Koa app: its `proxy`
// and `maxIpsCount` settings make ctx.ip exactly that, see service wiring);
// and for a client an admin marked as a trusted gateway, the end user's IP it
// sends in the X-End-User-IP header. Any other client's header is ignored.
import { isIP } from 'node:net';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { SecurityEvents } from './events.ts';

export const END_USER_IP_HEADER = 'x-end-user-ip';

/** Lets oidc-provider derive ctx.ip from X-Forwarded-For for exactly `hops` proxies. */
export function trustProxyHops(app: { proxy: boolean; maxIpsCount: number }, hops: number): void {
  app.proxy = hops > 0;
  app.maxIpsCount = hops;
}

export function normalizeIp(ip: string): string {
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return (v4mapped ? v4mapped[1]! : ip).toLowerCase();
}

export function endUserIp(
  ctx: KoaContextWithOIDC,
  client: { clientId: string; trusted_gateway?: unknown },
  events: SecurityEvents,
): string {
  const forwarded = ctx.get(END_USER_IP_HEADER).trim();
  if (forwarded) {
    if (client.trusted_gateway === true) {
      if (!isIP(forwarded)) throw new errors.InvalidRequest(`invalid ${END_USER_IP_HEADER} header`);
      return normalizeIp(forwarded);
    }
    events.emit('gateway.forwarded_ip_ignored', { clientId: client.clientId });
  }
  return normalizeIp(ctx.ip || 'unknown');
}
