// A downstream service that trusts the identity service: every route verifies
// the caller's access token offline with identity-service/verify.
//   ISSUER=http://localhost:3000 AUDIENCE=api://default PORT=4000 node examples/orders-service.ts
import express from 'express';
import { requireAuth, requireRole, requireScope, type RequireAuthOptions } from 'identity-service/verify';

export function createOrdersApp(options: RequireAuthOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  const auth = requireAuth(options);

  // get_current_user: any valid token.
  app.get('/me', auth, (req, res) => {
    const { subject, clientId, scopes, roles } = req.auth!;
    res.json({ subject, clientId, scopes, roles });
  });
  app.get('/orders', auth, requireScope('api:read'), (req, res) => {
    res.json({ owner: req.auth!.subject, orders: [] });
  });
  app.post('/orders', auth, requireScope('api:write'), (_req, res) => {
    res.status(201).json({ created: true });
  });
  // get_admin_user: a token whose user has the admin role.
  app.get('/admin/report', auth, requireRole('admin'), (_req, res) => {
    res.json({ report: 'ok' });
  });
  return app;
}

if (import.meta.main) {
  const issuer = process.env.ISSUER ?? 'http://localhost:3000';
  const port = Number(process.env.PORT ?? 4000);
  createOrdersApp({ issuer, audience: process.env.AUDIENCE ?? 'api://default' }).listen(port, '127.0.0.1', () => {
    console.log(`orders service on http://127.0.0.1:${port}, trusting ${issuer}`);
  });
}
