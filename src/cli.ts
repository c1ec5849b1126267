#!/usr/bin/env node
// `identity`: the admin CLI. Prints JSON on stdout, errors on stderr.
//   identity serve | migrate
//   identity users create --email E --password-stdin [--roles a,b]
//   identity users import [--from ndjson|keycloak|auth0|firebase] [FILE] [--hash-config FILE] [--role-map a=b,...]
//   identity clients create --id ID --grant-types password,refresh_token [--scopes "a b"] [--resources URI]
//   identity keys list | rotate | set-alg ALG | revoke KID | rekey | export --pem DIR [--jwks-url URL]
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { IMPORT_SOURCES, importUsers, type ImportSource } from './accounts/import.ts';
import { passwordFromBytes } from './accounts/policy.ts';
import { GRANT_TYPES, type GrantType } from './clients/index.ts';
import { loadConfig, type Config } from './config/index.ts';
import { ServiceError } from './errors.ts';
import { progressReporter } from './lib/progress.ts';
import { createLogger } from './observability/log.ts';
import { flushTraces } from './observability/traces.ts';
import type { AuditMeta } from './security/audit.ts';
import { domainServices, openStores, startService, type Stores } from './service.ts';
import type { SigningAlg } from './keys/keystore.ts';
import { exportPem, publishedPublicJwks, signingKeysOf } from './keys/pem-export.ts';
import { databaseProblem } from './store/boot-checks.ts';
import { migrate } from './store/migrate.ts';
import { RedisTokenStore } from './tokens/redis-adapter.ts';

const USAGE = `usage:
  identity serve
  identity migrate
  identity users create --email EMAIL --password-stdin [--roles admin,viewer]
  identity users import [--from ndjson|keycloak|auth0|firebase] [FILE] [--hash-config FILE] [--role-map src=role,...]
                                reads FILE (or standard input); progress on stderr, the report on stdout
  identity users trickle-end    stop asking the legacy identity provider (LEGACY_IDP_*), on every replica
  identity clients create --id ID --grant-types ${GRANT_TYPES.join(',')} [--scopes "a b"] [--trusted-gateway] [--first-party] [--resources URI,...] [--dpop-bound]
  identity keys list
  identity keys rotate          publish a successor key; it signs after JWKS_MAX_AGE + KEY_SYNC_INTERVAL
  identity keys set-alg ALG     move signing to ES256, EdDSA or PS256 the same way (published first)
  identity keys revoke KID      emergency: unpublish KID now (tokens it signed stop verifying)
  identity keys rekey           re-encrypt private keys from OLD_KEY_ENCRYPTION_KEY to KEY_ENCRYPTION_KEY
  identity keys export --pem DIR [--jwks-url URL]
                                write every published public key to DIR as KID.pem, plus HAProxy's
                                kids.map and keys.cfg (from Postgres, or from the JWKS at URL)`;

const list = (v: string | undefined, sep: RegExp) => (v ?? '').split(sep).map((s) => s.trim()).filter(Boolean);

async function readStdinBytes(what = '--password-stdin: pipe the password'): Promise<Buffer> {
  if (process.stdin.isTTY) throw new ServiceError('validation_failed', `${what} on standard input`);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A JSON document over HTTP(S), for `keys export --jwks-url` (no redirects, 10 s). */
async function fetchJson(url: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(new URL(url), { redirect: 'error', signal: AbortSignal.timeout(10_000), headers: { accept: 'application/json' } });
  } catch (err) {
    throw new ServiceError('temporarily_unavailable', `${url}: ${(err as Error).message}`);
  }
  if (res.status !== 200) throw new ServiceError('temporarily_unavailable', `${url} answered ${res.status}`);
  return res.json();
}

const CLI: AuditMeta = { actor: 'cli' };

/** Opens the stores, runs `fn` with the services (audited as actor `cli`), closes. */
async function withServices<T>(config: Config, fn: (services: ReturnType<typeof domainServices>, stores: Stores) => Promise<T>): Promise<T> {
  const logger = createLogger('warn', process.stderr);
  // A wrong DATABASE_URL or an unmigrated database: one line saying which, not the ORM's error.
  const problem = config.databaseUrl ? await databaseProblem(config.databaseUrl) : undefined;
  if (problem) throw new ServiceError('temporarily_unavailable', problem.line);
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
        await flushTraces();
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
    const { values, positionals } = parseArgs({
      args: rest,
      options: { from: { type: 'string', default: 'ndjson' }, 'hash-config': { type: 'string' }, 'role-map': { type: 'string' } },
      allowPositionals: true,
      strict: true,
    });
    const from = values.from as ImportSource;
    if (!IMPORT_SOURCES.includes(from) || positionals.length > 1) throw new ServiceError('validation_failed', `--from: one of ${IMPORT_SOURCES.join(', ')}\n${USAGE}`);
    const text = positionals[0] ? await readFile(positionals[0], 'utf8') : (await readStdinBytes('users import: name a FILE or pipe it')).toString('utf8');
    const hashConfig = values['hash-config'] ? await readFile(values['hash-config'], 'utf8') : undefined;
    const roleMap = Object.fromEntries(list(values['role-map'], /,/).map((pair) => pair.split('=').map((s) => s.trim()) as [string, string]));
    const progress = progressReporter('users', process.stderr);
    const report = await withServices(config, ({ accounts }) =>
      importUsers(accounts, text, CLI, { from, roleMap, ...(hashConfig ? { hashConfig } : {}), onProgress: (p) => progress({ ...p }) }),
    );
    progress.end();
    console.log(JSON.stringify(report, null, 2));
    return report.failed ? 1 : 0;
  }

  if (command === 'users' && sub === 'trickle-end' && rest.length === 0) {
    const out = await withServices(config, ({ accounts }) => accounts.endTrickle(CLI));
    console.log(JSON.stringify(out, null, 2));
    return 0;
  }

  if (command === 'clients' && sub === 'create') {
    const { values } = parseArgs({
      args: rest,
      options: {
        id: { type: 'string' },
        'grant-types': { type: 'string' },
        scopes: { type: 'string' },
        'trusted-gateway': { type: 'boolean' },
        'first-party': { type: 'boolean' },
        resources: { type: 'string' },
        'dpop-bound': { type: 'boolean' },
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
          firstParty: values['first-party'] === true,
          resources: list(values.resources, /,/),
          dpopBound: values['dpop-bound'] === true,
        },
        CLI,
      ),
    );
    console.log(JSON.stringify(client, null, 2));
    return 0;
  }

  if (command === 'keys' && sub === 'export') {
    const { values } = parseArgs({ args: rest, options: { pem: { type: 'string' }, 'jwks-url': { type: 'string' } }, strict: true });
    if (!values.pem) throw new ServiceError('validation_failed', `keys export: --pem DIR is required\n${USAGE}`);
    const url = values['jwks-url'];
    const jwks = url ? signingKeysOf(await fetchJson(url)) : await withServices(config, (_services, stores) => publishedPublicJwks(stores.db));
    console.log(JSON.stringify(await exportPem(values.pem, jwks), null, 2));
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
    // exit() rather than exitCode: a failed boot must not linger on open handles.
    process.exit(err instanceof ServiceError && err.code === 'validation_failed' ? 2 : 1);
  },
);
