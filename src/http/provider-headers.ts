// Response headers oidc-provider does not set the way we want:
// - CORS: oidc-provider reflects any Origin on discovery, JWKS and token
//   endpoints. Here CORS is off unless CORS_ORIGINS lists the origin; an
//   allowed origin is echoed alone, never with credentials.
// - token, introspection and revocation answers are never cached (RFC 6749 §5.1).
import type { KoaContextWithOIDC } from 'oidc-provider';

const NO_STORE_ROUTES = new Set(['token', 'introspection', 'revocation']);

export function providerHeaders(corsOrigins: readonly string[]) {
  const allowed = new Set(corsOrigins);
  return async function headers(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
    await next();
    const origin = ctx.get('Origin');
    const corsHeaders = Object.keys(ctx.response.headers).filter((h) => h.toLowerCase().startsWith('access-control-'));
    if (origin && allowed.has(origin)) {
      if (corsHeaders.length) ctx.set('Access-Control-Allow-Origin', origin);
      ctx.remove('Access-Control-Allow-Credentials');
    } else {
      for (const h of corsHeaders) ctx.remove(h);
    }
    const route = (ctx.oidc as { route?: string } | undefined)?.route;
    if (route && NO_STORE_ROUTES.has(route)) {
      ctx.set('Cache-Control', 'no-store');
      ctx.set('Pragma', 'no-cache');
    }
  };
}
