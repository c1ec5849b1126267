// examples/gateways/haproxy against Debian's haproxy: jwt_verify (ES256)
// against the PEM files `identity keys export --pem` writes, and the kit's
// sync-keys.sh (export, check, reload) running beside the rotation load.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, gatewaySuite, KITS, REPO, startBinary, type KitEnv } from './support.ts';

const run = promisify(execFile);
const CLI = join(REPO, 'src/cli.ts');
let master: number | undefined;

function kitEnv({ s, upstream, gatewayBasic, dir }: KitEnv, port: number): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    LISTEN: `127.0.0.1:${port}`,
    IDENTITY: new URL(s.config.issuer).host,
    UPSTREAM: upstream,
    ISSUER: s.config.issuer,
    AUDIENCE: s.config.audience,
    KEYS_DIR: join(dir, 'keys'),
    GATEWAY_CLIENT_BASIC: gatewayBasic,
  };
}
let envOf: NodeJS.ProcessEnv = {};

/** The kit's key-sync command, as an operator's timer runs it. */
const syncKeys = (env: KitEnv) =>
  run(join(KITS, 'haproxy/sync-keys.sh'), [], {
    env: {
      ...envOf,
      NODE_ENV: 'test',
      JWKS_URL: `${env.s.config.issuer}/jwks`,
      HAPROXY_CFG: join(KITS, 'haproxy/haproxy.cfg'),
      IDENTITY_CLI: `${process.execPath} ${CLI}`,
      // Master-worker mode: SIGUSR2 makes the master re-read both files and replace its workers.
      HAPROXY_RELOAD: master ? `kill -USR2 ${master}` : 'true',
    },
    timeout: 60_000,
  });

gatewaySuite({
  name: 'haproxy',
  forwardsRoles: false,
  checksRevocation: false,
  async start(env) {
    const port = await freePort();
    envOf = kitEnv(env, port);
    await syncKeys(env);
    const proc = await startBinary(
      '/usr/sbin/haproxy',
      ['-W', '-db', '-f', join(KITS, 'haproxy/haproxy.cfg'), '-f', join(envOf.KEYS_DIR!, 'keys.cfg')],
      port,
      envOf,
    );
    master = proc.child.pid;
    return { url: `http://127.0.0.1:${port}`, stop: () => proc.stop() };
  },
  // The sync job runs back to back during the load (an operator's timer, faster).
  async duringRotation(env, until) {
    let done = false;
    void until.then(() => (done = true));
    let reloads = 0;
    while (!done) {
      const { stdout } = await syncKeys(env);
      if (stdout.includes('reloaded')) reloads++;
      await new Promise((r) => setTimeout(r, 500));
    }
    if (reloads === 0) throw new Error('the rotation never reached HAProxy');
  },
});
