// A login flood is shed here, in express, right after the body has been
// validated and before oidc-provider's koa stack, client authentication or
// any store round trip: a password grant (or a first call of the challenge
// endpoint, which checks a password too) that arrives while the hash gate is
// full gets its 503 at once. Each shed answer is counted (metric) and
// sampled (`login.shed` warnings) by `onShed`, but gets no request log line:
// a flood must not become a log flood, and a 5xx line costs pino-http an
// Error with a stack trace per request (see README "Login flood").
import type { NextFunction, Request, Response } from 'express';
import { OVERLOADED } from '../security/hash-gate.ts';

/** Marks a response the request log skips (src/http/request-log.ts). */
export const UNLOGGED = 'unlogged';

/** Does this request check a password? The password grant, and the first call of the challenge endpoint. */
function checksPassword(path: string, form: URLSearchParams): boolean {
  if (path === '/token') return form.get('grant_type') === 'password';
  // /authorize-challenge (src/tokens/challenge-endpoint.ts): its follow-up
  // (auth_session + code) hashes no password and is not shed.
  return path === '/authorize-challenge' && form.has('password');
}

export function passwordShedDoor(gate: { readonly full: boolean }, onShed: (ip: string) => void) {
  return (req: Request, res: Response, next: NextFunction) => {
    // inputHardening left a validated form body as a string (or nothing).
    if (!gate.full || req.method !== 'POST' || typeof req.body !== 'string') return next();
    if (!checksPassword(req.path, new URLSearchParams(req.body))) return next();
    onShed(req.ip ?? 'unknown');
    res.locals[UNLOGGED] = true;
    res
      .status(503)
      .set({ 'Retry-After': '1', 'Cache-Control': 'no-store', Pragma: 'no-cache' })
      .json({ error: 'temporarily_unavailable', error_description: OVERLOADED });
  };
}
