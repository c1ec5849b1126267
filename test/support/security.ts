// Helpers for the abuse-resistance tests (see SECURITY.md for the mapping).
import { createClient } from '../../src/clients/index.ts';
import { basic, postForm, type TestService } from './service.ts';

export type TestClient = { id: string; secret: string };

/** A client an admin marked as a trusted gateway (may send X-End-User-IP). */
export async function trustedGateway(svc: TestService, grantTypes = ['password', 'refresh_token'] as const): Promise<TestClient> {
  const c = await createClient(
    svc.stores.db,
    { id: `gw-${Math.random().toString(36).slice(2, 10)}`, grantTypes: [...grantTypes], scopes: ['api:read'], trustedGateway: true },
    svc.config.scopes,
  );
  return { id: c.client_id, secret: c.client_secret };
}

export function passwordLogin(svc: TestService, client: TestClient, username: string, password: string, headers: Record<string, string> = {}) {
  return postForm(
    `${svc.config.issuer}/token`,
    { grant_type: 'password', username, password },
    { authorization: basic(client.id, client.secret), ...headers },
  );
}

export function refresh(svc: TestService, client: TestClient, refreshToken: string) {
  return postForm(
    `${svc.config.issuer}/token`,
    { grant_type: 'refresh_token', refresh_token: refreshToken },
    { authorization: basic(client.id, client.secret) },
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Mann-Whitney's common-language effect size: the probability that a value
 * from `a` exceeds one from `b` (ties count half). 0.5 when the two
 * distributions are the same; near 0 or 1 when one is systematically slower.
 */
export function probabilityOfSuperiority(a: number[], b: number[]): number {
  let wins = 0;
  for (const x of a) for (const y of b) wins += x > y ? 1 : x === y ? 0.5 : 0;
  return wins / (a.length * b.length);
}

/** Records every security event the service emits, by name. */
export function recordEvents(svc: TestService): Map<string, object[]> {
  const seen = new Map<string, object[]>();
  const emitter = svc.events as unknown as { emit(name: string, detail: object): boolean };
  const emit = emitter.emit.bind(emitter);
  emitter.emit = (name, detail) => {
    seen.set(name, [...(seen.get(name) ?? []), detail]);
    return emit(name, detail);
  };
  return seen;
}

/** The service's Prometheus text from the admin port. */
export async function scrape(svc: TestService): Promise<string> {
  return (await fetch(`${svc.adminUrl}/metrics`)).text();
}

/** The sum of a metric's samples whose labels include all of `labels` (0 when none). */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** The label sets of every sample of a metric. */
export function series(text: string, name: string): Record<string, string>[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`))
    .map((line) => Object.fromEntries([...line.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!])));
}

/** POST /account/password with a user's access token. */
export async function changePassword(svc: TestService, accessToken: string, current: string, next: string) {
  const res = await fetch(`${svc.config.issuer}/account/password`, {
    method: 'POST',
    headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ current_password: current, new_password: next }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** Runs `task(i)` for i < count with at most `width` in flight; the results in order. */
export async function inParallel<T>(count: number, width: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, count) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await task(i);
      }
    }),
  );
  return out;
}
