// examples/gateways/nginx against Debian's nginx (auth_request to GET /verify).
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, gatewaySuite, KITS, render, startBinary } from './support.ts';

gatewaySuite({
  name: 'nginx',
  forwardsRoles: true,
  checksRevocation: true,
  async start({ s, upstream, gatewayBasic, dir }) {
    const port = await freePort();
    mkdirSync(join(dir, 'conf'), { recursive: true });
    // Started as root (CI), NGINX's workers run as nobody and keep large bodies under PREFIX.
    chmodSync(dir, 0o755);
    copyFileSync(join(KITS, 'nginx/identity-headers.conf'), join(dir, 'conf/identity-headers.conf'));
    const conf = join(dir, 'conf/nginx.conf');
    writeFileSync(
      conf,
      render(readFileSync(join(KITS, 'nginx/nginx.conf.template'), 'utf8'), {
        LISTEN: `127.0.0.1:${port}`,
        IDENTITY: new URL(s.config.issuer).host,
        UPSTREAM: upstream,
        GATEWAY_CLIENT_BASIC: gatewayBasic,
        PREFIX: dir,
      }),
    );
    const proc = await startBinary('/usr/sbin/nginx', ['-p', dir, '-c', conf, '-e', 'stderr', '-g', 'daemon off;'], port);
    return { url: `http://127.0.0.1:${port}`, stop: () => proc.stop() };
  },
});
