#!/usr/bin/env node
// `identity`: the admin CLI. Prints JSON on stdout, errors on stderr.
//   identity serve | migrate
//   identity users create --email E --password-stdin [--roles a,b]
//   identity users import < users.ndjson
//   identity clients create --id ID --grant-types password,refresh_token [--scopes "a b"] [--resources URI]
//   identity keys list | rotate | set-alg ALG | revoke KID | rekey
import { parseArgs } from 'node:util';
import { importUsers } from './accounts/import.ts';
import { passwordFromBytes } from './accounts/policy.ts';
import { GRANT_TYPES, type GrantType } from './clients/index.ts';
import { loadConfig, type Config } from './config/index.ts';
import { ServiceError } from './errors.ts';
import { createLogger } from './observability/log.ts';
import type { AuditMeta } from './security/audit.ts';
import { domainServices, openStores, startService, type Stores } from './service.ts';
import type { SigningAlg } from './keys/keystore.ts';
import { migrate } from './store/migrate.ts';
import { RedisTokenStore } from './tokens/redis-adapter.ts';

const USAGE = `usage:
  identity serve
  identity migrate
  identity users create --email EMAIL --password-stdin [--roles admin,viewer]
  identity users import < users.ndjson
  identity clients create --id ID --grant-types ${GRANT_TYPES.join(',')} [--scopes "a b"] [--trusted-gateway] [--resources URI,...]
  identity keys list
  identity keys rotate          publish a successor key; it signs after JWKS_MAX_AGE + KEY_SYNC_INTERVAL
  identity keys set-alg ALG     move signing to ES256, EdDSA or PS256 the same way (published first)
  identity keys revoke KID      emergency: unpublish KID now (tokens it signed stop verifying)
  identity keys rekey           re-encrypt private keys from OLD_KEY_ENCRYPTION_KEY to KEY_ENCRYPTION_KEY`;

const list = (v: string | undefined, sep: RegExp) => (v ?? '').split(sep).map((s) => s.trim()).filter(Boolean);

async function readStdinBytes(): Promise<Buffer> {
  if (process.stdin.isTTY) throw new ServiceError('validation_failed', '--password-stdin: pipe the password on standard input');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}


const CLI: AuditMeta = { actor: 'cli' };

/** Opens the stores, runs `fn` with the services (audited as actor `cli`), closes. */
async function withServices<T>(config: Config, fn: (services: ReturnType<typeof domainServices>, stores: Stores) => Promise<T>): Promise<T> {
  const logger = createLogger('warn', process.stderr);
  const stores = await openStores(config, logger);
  // Revocations are committed in Postgres; this cleans Redis up afterwards.
  // Without Redis (development) the server's in-memory store is in another
  // process, which cleans up when it reads the dead grants.
  const sessions = stores.redis
    ? new RedisTokenStore(stores.redis, config.redisKeyPrefix)
    : { purgeAccount: async () => 0, purgeClient: async () => 0 };
  try {
    return await fn(domainServices(config, stores, logger, sessions), stores);
  } finally {
    await stores.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, sub, ...rest] = argv;
  const config = loadConfig();
  if (command === 'serve') {
    const logger = createLogger(config.logLevel);
    const service = await startService(config, logger);
    const stop = async (signal: string) => {
      logger.info({ signal, delayMs: config.shutdownDelayMs, graceMs: config.shutdownGraceMs }, 'shutting down: draining');
      setTimeout(() => {
        logger.error('shutdown grace period exceeded: exiting with requests still open');
        process.exit(1);
      }, config.shutdownGraceMs).unref();
      try {
        await service.close();
        logger.info('shut down: connections closed, Redis and Postgres disconnected');
        process.exit(0);
      } catch (err) {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      }
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    return -1; // keep running
  }

  if (command === 'migrate') {
    if (!config.databaseUrl) throw new ServiceError('validation_failed', 'DATABASE_URL is not set');
    const applied = await migrate(config.databaseUrl);
    console.log(JSON.stringify({ applied }));
    return 0;
  }

  if (command === 'users' && sub === 'create') {
    const { values } = parseArgs({
      args: rest,
      options: { email: { type: 'string' }, 'password-stdin': { type: 'boolean' }, roles: { type: 'string' } },
      strict: true,
    });
    if (!values.email || !values['password-stdin']) throw new ServiceError('validation_failed', `missing option\n${USAGE}`);
    // Strict UTF-8, like /token: a password nobody could type at login is refused here.
    const password = passwordFromBytes(await readStdinBytes()).replace(/\r?\n$/, '');
    const user = await withServices(config, ({ accounts }) =>
      accounts.create({ email: values.email!, password, roles: list(values.roles, /,/), status: 'active' }, CLI),
    );
    console.log(JSON.stringify(user, null, 2));
    return 0;
  }

  if (command === 'users' && sub === 'import') {
    const ndjson = (await readStdinBytes()).toString('utf8');
    const report = await withServices(config, ({ accounts }) => importUsers(accounts, ndjson, CLI));
    console.log(JSON.stringify(report, null, 2));
    return report.failed ? 1 : 0;
  }

  if (command === 'clients' && sub === 'create') {
    const { values } = parseArgs({
      args: rest,
      options: {
        id: { type: 'string' },
        'grant-types': { type: 'string' },
        scopes: { type: 'string' },
        'trusted-gateway': { type: 'boolean' },
        resources: { type: 'string' },
      },
      strict: true,
    });
    const client = await withServices(config, ({ clients }) =>
      clients.create(
        {
          id: values.id ?? '',
          grantTypes: list(values['grant-types'], /,/) as GrantType[],
          scopes: list(values.scopes, /[\s,]+/),
          trustedGateway: values['trusted-gateway'] === true,
          resources: list(values.resources, /,/),
        },
        CLI,
      ),
    );
    console.log(JSON.stringify(client, null, 2));
    return 0;
  }

  const keyCommand = { list: 0, rotate: 0, 'set-alg': 1, revoke: 1, rekey: 0 }[sub ?? ''];
  if (command === 'keys' && keyCommand === rest.length) {
    if (sub === 'rekey' && (!config.oldKeyEncryptionKey || !config.keyEncryptionKey)) {
      throw new ServiceError('validation_failed', 'keys rekey needs OLD_KEY_ENCRYPTION_KEY (current) and KEY_ENCRYPTION_KEY (new)');
    }
    const out = await withServices(config, async ({ keys }): Promise<unknown> => {
      if (sub === 'rotate') return keys.rotate(CLI);
      if (sub === 'set-alg') {
        const alg = rest[0]!;
        if (!['ES256', 'EdDSA', 'PS256'].includes(alg)) throw new ServiceError('validation_failed', 'set-alg: ES256, EdDSA or PS256');
        return (await keys.setAlg(alg as SigningAlg, CLI)) ?? { unchanged: `already signing with ${alg}` };
      }
      if (sub === 'revoke') return keys.revoke(rest[0]!, CLI);
      if (sub === 'rekey') return keys.rekey(config.oldKeyEncryptionKey!, CLI);
      return keys.list();
    });
    console.log(JSON.stringify(out, null, 2));
    return 0;
  }

  console.error(USAGE);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    const message = err instanceof ServiceError || (err as Error)?.name === 'TypeError' ? (err as Error).message : String((err as Error)?.message ?? err);
    console.error(`identity: ${message}`);
    process.exitCode = err instanceof ServiceError && err.code === 'validation_failed' ? 2 : 1;
  },
);
