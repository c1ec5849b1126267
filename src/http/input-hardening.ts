// Input hardening in front of oidc-provider: every query string and form body
// must be bounded, valid percent-encoded UTF-8 without control characters,
// with no parameter twice and no bracketed (array/object) names. Anything
// else is a 400 invalid_request (413 when too large) in RFC 6749 shape,
// before any OAuth logic runs. A validated form body is handed to
// oidc-provider as the raw string (its documented "already parsed body"
// path), which it parses itself, so there is exactly one parser.
import type { NextFunction, Request, Response } from 'express';
// C0 (tab allowed), DEL, C1: the same rule a password must meet wherever it is set.
import { CONTROL_CHARACTERS as CONTROL } from '../accounts/policy.ts';
const BAD_NAME = /[[\]]/;

class BadInput extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part.replace(/\+/g, ' '));
  } catch {
    throw new BadInput('malformed percent-encoding or invalid UTF-8');
  }
}

/** Throws BadInput unless `encoded` is a clean application/x-www-form-urlencoded string. */
export function checkForm(encoded: string): void {
  const seen = new Set<string>();
  for (const pair of encoded.split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const name = decode(eq < 0 ? pair : pair.slice(0, eq));
    const value = eq < 0 ? '' : decode(pair.slice(eq + 1));
    if (CONTROL.test(name) || CONTROL.test(value)) throw new BadInput('control characters are not allowed');
    if (BAD_NAME.test(name)) throw new BadInput(`parameter '${name.slice(0, 64)}' is not allowed`);
    if (seen.has(name)) throw new BadInput(`parameter '${name.slice(0, 64)}' is duplicated`);
    seen.add(name);
  }
}

async function readBody(req: Request, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) throw new BadInput('request body too large', 413);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) throw new BadInput('request body too large', 413);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function inputHardening(maxBodyBytes: number) {
  return async (req: Request, res: Response, next: NextFunction) => {
    try {
      const q = req.originalUrl.indexOf('?');
      if (q >= 0) checkForm(req.originalUrl.slice(q + 1));
      if (req.is('application/x-www-form-urlencoded')) {
        const raw = await readBody(req, maxBodyBytes);
        let text: string;
        try {
          text = utf8.decode(raw);
        } catch {
          throw new BadInput('request body is not valid UTF-8');
        }
        checkForm(text);
        (req as Request & { body: string }).body = text;
      }
      next();
    } catch (err) {
      if (!(err instanceof BadInput)) return next(err);
      if (err.status === 413) res.set('Connection', 'close');
      res.status(err.status).set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' }).json({ error: 'invalid_request', error_description: err.message });
    }
  };
}
