// Express: requireAuth once, then requireScope / requireRole per route.
//   npm install express @identity-service/verify
//   ISSUER=https://id.example.com AUDIENCE=https://api.example.com node examples/express.js
import express from 'express';
import { requireAuth, requireRole, requireScope } from '@identity-service/verify';

const app = express();
app.use(requireAuth({ issuer: process.env.ISSUER, audience: process.env.AUDIENCE }));
app.get('/orders', requireScope('orders:read'), (req, res) => res.json({ subject: req.auth.subject }));
app.delete('/orders/:id', requireRole('admin'), (req, res) => res.status(204).end());
app.listen(Number(process.env.PORT ?? 4000));
