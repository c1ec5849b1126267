// Builds the accounts feature for service.ts: the lifecycle, resets, audit
// log, the admin router (admin port), the self-service router (public port),
// and the audited authenticate() the password grant calls.
import type { Router } from 'express';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { AuditLog, type AuditMeta } from '../accounts/audit.ts';
import { bootstrapAdmin } from '../accounts/bootstrap.ts';
import { Accounts } from '../accounts/lifecycle.ts';
import type { PasswordHasher } from '../accounts/passwords.ts';
import { PasswordResets } from '../accounts/reset.ts';
import type { SessionRevoker } from '../accounts/sessions.ts';
import { login, type Account } from '../accounts/users.ts';
import type { Config } from '../config/index.ts';
import type { Logger } from '../log.ts';
import type { Db } from '../store/postgres.ts';
import { RefreshTokenReused } from '../tokens/redis-adapter.ts';
import { requireBearer } from './auth.ts';
import { adminRouter } from './index.ts';
import { selfServiceRouter } from './self-service.ts';

export type AccountsModule = {
  accounts: Accounts;
  audit: AuditLog;
  adminRouter: Router;
  selfServiceRouter: Router;
  authenticate(username: string, password: string, ctx: KoaContextWithOIDC): Promise<Account | null>;
  /** Hook for oidc-provider's `grant.error` event: audits refresh token reuse. */
  onGrantError(ctx: KoaContextWithOIDC, err: unknown): void;
  bootstrap(): Promise<'created' | 'skipped'>;
};

function oidcMeta(ctx: KoaContextWithOIDC): AuditMeta {
  const id = (ctx.req as { id?: unknown }).id;
  return { clientId: ctx.oidc?.client?.clientId ?? null, ip: ctx.ip, requestId: id === undefined ? null : String(id) };
}

export function createAccountsModule(deps: {
  config: Config;
  db: Db;
  hasher: PasswordHasher;
  sessions: SessionRevoker;
  logger: Logger;
}): AccountsModule {
  const { config, db, hasher, logger } = deps;
  const audit = new AuditLog(db, logger);
  const accounts = new Accounts({
    db,
    hasher,
    policy: config.passwordPolicy,
    roles: config.roles,
    registrationMode: config.registrationMode,
    sessions: deps.sessions,
    audit,
  });
  const resets = new PasswordResets(accounts, config.mail, logger);
  const bearer = { issuer: config.issuer, audience: config.audience, algorithm: config.signingAlg };
  return {
    accounts,
    audit,
    adminRouter: adminRouter({
      accounts,
      resets,
      audit,
      knownScopes: config.scopes,
      requireAdmin: requireBearer({ ...bearer, role: 'admin' }),
    }),
    selfServiceRouter: selfServiceRouter(accounts, resets, requireBearer(bearer)),
    async authenticate(username, password, ctx) {
      const result = await login(db, hasher, username, password);
      const meta = oidcMeta(ctx);
      if (result.account) {
        await audit.record({ ...meta, type: 'login.success', actor: result.account.accountId, subject: result.account.accountId });
      } else {
        await audit.record({
          ...meta,
          type: 'login.failure',
          outcome: 'failure',
          reason: result.reason,
          subject: result.userId ?? null,
          // The attempted name helps spot credential stuffing; never the password.
          details: { username: username.slice(0, 320) },
        });
      }
      return result.account;
    },
    onGrantError(ctx, err) {
      // Sequential reuse is caught by oidc-provider (the stored token is marked
      // consumed), a concurrent one by the Redis adapter's atomic consume.
      const reused =
        err instanceof RefreshTokenReused ||
        (err as { error_detail?: string }).error_detail === 'refresh token already used';
      if (!reused) return;
      const token = ctx.oidc?.entities?.RefreshToken as { accountId?: string } | undefined;
      const subject = (err as RefreshTokenReused).accountId ?? token?.accountId ?? null;
      void audit.record({ ...oidcMeta(ctx), type: 'refresh.reuse_detected', outcome: 'failure', subject });
    },
    bootstrap: () => bootstrapAdmin(accounts, config.adminBootstrap, logger),
  };
}
