// Which IP a login comes from: the socket address, or the X-Forwarded-For
// entry TRUST_PROXY_HOPS hops back (the HTTP framework computes that), and
// for a client an admin marked as a trusted gateway, the end user's IP it
// sends in the X-End-User-IP header. Any other client's header is ignored.
import { isIP } from 'node:net';
import { ServiceError } from '../errors.ts';
import type { SecurityEvents } from './events.ts';

export const END_USER_IP_HEADER = 'x-end-user-ip';

export function normalizeIp(ip: string): string {
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return (v4mapped ? v4mapped[1]! : ip).toLowerCase();
}

/** `request`: the header getter and the peer (or proxied) address of the HTTP request. */
export function endUserIp(
  request: { header(name: string): string; ip: string },
  client: { clientId: string; trustedGateway: boolean },
  events: SecurityEvents,
): string {
  const forwarded = request.header(END_USER_IP_HEADER).trim();
  if (forwarded) {
    if (client.trustedGateway) {
      if (!isIP(forwarded)) throw new ServiceError('invalid_request', `invalid ${END_USER_IP_HEADER} header`);
      return normalizeIp(forwarded);
    }
    events.emit('gateway.forwarded_ip_ignored', { clientId: client.clientId });
  }
  return normalizeIp(request.ip || 'unknown');
}

