// GET /password/reset: the page the emailed link opens (the default
// PASSWORD_RESET_URL). A small HTML form, no framework and nothing from
// another origin: it completes the reset through the JSON endpoint
// (POST /password/reset) and shows the policy's answer next to the field.
// Without ?token=… it asks for a link instead (POST /password/forgot).
// Its CSP allows only this origin's script, style and fetch; no inline
// script or style, no framing, no form posts, no referrer (the link carries
// the token).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Router, type Response } from 'express';
import type { Config } from '../config/index.ts';

const dir = join(import.meta.dirname, 'reset-page');
const read = (file: string) => readFileSync(join(dir, file), 'utf8');

export const RESET_PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

export function resetPageRouter(config: Pick<Config, 'passwordPolicy' | 'mail'>): Router {
  const html = read('page.html')
    .replaceAll('{{MIN_LENGTH}}', String(config.passwordPolicy.minLength))
    .replaceAll('{{TTL_MINUTES}}', String(Math.round(config.mail.resetTtl / 60)));
  const assets = { js: read('page.js'), css: read('page.css') };
  const send = (res: Response, type: string, body: string, cache: string) =>
    res.status(200).type(type).set({ 'Content-Security-Policy': RESET_PAGE_CSP, 'Cache-Control': cache }).send(body);

  const router = Router();
  // The page's URL carries the reset token: never cached, never sent on as a referrer.
  router.get('/password/reset', (_req, res) => send(res, 'html', html, 'no-store'));
  router.get('/password/reset.js', (_req, res) => send(res, 'js', assets.js, 'public, max-age=300'));
  router.get('/password/reset.css', (_req, res) => send(res, 'css', assets.css, 'public, max-age=300'));
  return router;
}
