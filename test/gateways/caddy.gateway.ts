// examples/gateways/caddy against Debian's caddy (forward_auth to GET /verify).
import { join } from 'node:path';
import { freePort, gatewaySuite, KITS, startBinary } from './support.ts';

gatewaySuite({
  name: 'caddy',
  forwardsRoles: true,
  checksRevocation: true,
  async start({ s, upstream, gatewayBasic, dir }) {
    const port = await freePort();
    const proc = await startBinary('/usr/bin/caddy', ['run', '--config', join(KITS, 'caddy/Caddyfile'), '--adapter', 'caddyfile'], port, {
      // Caddy's own state (certificates, autosave) under the test's directory, never the system's.
      HOME: dir,
      XDG_CONFIG_HOME: join(dir, 'config'),
      XDG_DATA_HOME: join(dir, 'data'),
      LISTEN: `127.0.0.1:${port}`,
      IDENTITY: new URL(s.config.issuer).host,
      UPSTREAM: upstream,
      GATEWAY_CLIENT_BASIC: gatewayBasic,
    });
    return { url: `http://127.0.0.1:${port}`, stop: () => proc.stop() };
  },
});
