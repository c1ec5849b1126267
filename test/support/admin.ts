// Helpers for the accounts and admin API tests: tokens for a user, and JSON
// calls to the admin and public ports.
import * as oauth from 'openid-client';
import type { TestService } from './service.ts';

export type Json = Record<string, any>;

export async function call(
  base: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; raw?: string; type?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Json; headers: Headers }> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.raw !== undefined) {
    body = opts.raw;
    headers['content-type'] = opts.type ?? 'application/json';
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let parsed: Json = {};
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = { text };
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** A gateway client allowed the password grant, and a login helper. */
export async function gatewayFor(svc: TestService) {
  const client = await svc.client({ grantTypes: ['password', 'refresh_token'], scopes: ['api:read'] });
  const conf = await svc.oauth(client);
  return {
    client,
    conf,
    login: (username: string, password: string) => oauth.genericGrantRequest(conf, 'password', { username, password }),
    refresh: (refreshToken: string) => oauth.refreshTokenGrant(conf, refreshToken),
  };
}

/**
 * An admin console: a client an admin allowed ADMIN_AUDIENCE, logging in
 * with RFC 8707 `resource` (the admin API accepts no other tokens).
 */
export async function adminConsoleFor(svc: TestService) {
  const client = await svc.client({ grantTypes: ['password', 'refresh_token'], scopes: ['api:read'], resources: [svc.config.adminAudience] });
  const conf = await svc.oauth(client);
  const resource = svc.config.adminAudience;
  return {
    client,
    conf,
    login: (username: string, password: string) => oauth.genericGrantRequest(conf, 'password', { username, password, resource }),
    refresh: (refreshToken: string) => oauth.refreshTokenGrant(conf, refreshToken),
  };
}

/** An admin user and an admin API access token (through an admin console client). */
export async function adminToken(svc: TestService) {
  const admin = await svc.user({ roles: ['admin'] });
  const console = await adminConsoleFor(svc);
  const tokens = await console.login(admin.email, admin.password);
  return { admin, token: tokens.access_token, console, refreshToken: tokens.refresh_token };
}

/** What most admin API tests start with: a gateway client and an admin's access token. */
export async function gatewayAndAdmin(svc: TestService) {
  const gw = await gatewayFor(svc);
  const { admin, token } = await adminToken(svc);
  return { gw, admin, token };
}
