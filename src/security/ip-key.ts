// The key a per-IP limit counts under. An IPv4 address counts alone; an IPv6
// address counts by its network prefix (/64 by default: what one subscriber,
// or one cloud VM, gets), so cycling through the 2^64 addresses of a single
// allocation is still one budget. IPv4-mapped IPv6 (::ffff:a.b.c.d) is the
// IPv4 address. Anything unparsable (no socket address) is its own key.
import ipaddr from 'ipaddr.js';

export const DEFAULT_IPV6_PREFIX = 64;

export function ipKey(ip: string, ipv6Prefix = DEFAULT_IPV6_PREFIX): string {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.process(ip);
  } catch {
    return ip;
  }
  if (addr.kind() === 'ipv4') return addr.toString();
  const network = ipaddr.IPv6.networkAddressFromCIDR(`${addr.toString()}/${ipv6Prefix}`);
  return `${network.toString()}/${ipv6Prefix}`;
}
