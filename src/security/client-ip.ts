// Which IP a login comes from: the socket address, or the X-Forwarded-For
// entry TRUST_PROXY_HOPS hops back (the HTTP framework computes that), and
// for a client an admin marked as a trusted gateway, the end user's IP it
// sends in the X-End-User-IP header. Any other client's header is ignored.
// Limits count per source (sourceKey): an IPv4 address, or the IPv6 prefix
// (LOGIN_IPV6_PREFIX, /64 by default) that one subscriber usually holds whole.
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
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

/**
 * The key per-IP limits count under: an IPv4 address as it is, an IPv6
 * address as its network prefix of `ipv6PrefixBits` (`2001:db8:1:2::/64`),
 * anything unparsable as it is. Pure.
 */
export function sourceKey(raw: string, ipv6PrefixBits: number): string {
  const ip = normalizeIp(raw);
  if (isIP(ip) !== 6) return ip;
  const network = ipaddr.IPv6.networkAddressFromCIDR(`${ip}/${ipv6PrefixBits}`);
  return `${network.toString()}/${ipv6PrefixBits}`;
}
