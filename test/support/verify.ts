// Shared by the verifier and rotation tests: the example service in front of
// a test identity service, and token plumbing.
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { decodeProtectedHeader, importJWK, SignJWT, type JWK } from 'jose';
import { createOrdersApp } from '../../examples/orders-service.ts';
import { unseal } from '../../src/lib/crypto.ts';
import { basic, postForm, type TestService } from './service.ts';

export type Example = { url: string; close(): Promise<void> };

export async function startExample(options: Parameters<typeof createOrdersApp>[0]): Promise<Example> {
  const server: Server = createOrdersApp(options).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export async function call(
  url: string,
  token: string | undefined,
  init: { method?: string; authorization?: string } = {},
): Promise<{ status: number; challenge: string; body: Record<string, unknown> }> {
  const authorization = init.authorization ?? (token === undefined ? undefined : `Bearer ${token}`);
  const res = await fetch(url, { method: init.method ?? 'GET', headers: authorization ? { authorization } : {} });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, challenge: res.headers.get('www-authenticate') ?? '', body };
}

/** A password-grant access token from the service (by raw POST, any replica URL). */
export async function passwordToken(
  tokenUrl: string,
  client: { id: string; secret: string },
  user: { email: string; password: string },
  scope?: string,
): Promise<string> {
  const res = await postForm(
    tokenUrl,
    { grant_type: 'password', username: user.email, password: user.password, ...(scope ? { scope } : {}) },
    { authorization: basic(client.id, client.secret) },
  );
  if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${res.text}`);
  return res.body.access_token as string;
}

export const kidOf = (jwt: string) => decodeProtectedHeader(jwt).kid;

/** The private key that signs right now, straight from the database (to forge well-signed bad tokens). */
export async function activePrivateKey(s: TestService): Promise<{ kid: string; key: Awaited<ReturnType<typeof importJWK>>; publicJwk: JWK }> {
  const row = await s.stores.db.signingKey.findFirstOrThrow({ where: { status: 'active' } });
  const jwk = JSON.parse(unseal(s.stores.kek, row.privateJwkEnc, row.kid)) as JWK;
  return { kid: row.kid, key: await importJWK(jwk, row.alg), publicJwk: row.publicJwk as JWK };
}

/** An access token with valid claims for `s`, signed by `signer`, expiring in 5 minutes (a key's signature is all that can be wrong). */
export function signedBy(s: TestService, signer: Awaited<ReturnType<typeof activePrivateKey>>, alg = 'ES256'): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: s.config.issuer, aud: s.config.audience, sub: 'someone', client_id: 'some-client', jti: randomUUID(), iat: now, exp: now + 300 })
    .setProtectedHeader({ alg, typ: 'at+jwt', kid: signer.kid })
    .sign(signer.key);
}

/** Polls `fn` until it returns a truthy value; fails after `ms`. */
export async function eventually<T>(fn: () => Promise<T | undefined | false>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
