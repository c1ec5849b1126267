// Plain node:http: verifyRequest() per request, sendError() for refusals.
//   ISSUER=https://id.example.com AUDIENCE=https://api.example.com node examples/node-http.js
import { createServer } from 'node:http';
import { createVerifier, sendError } from '@identity-service/verify';

const { verifyRequest } = createVerifier({ issuer: process.env.ISSUER, audience: process.env.AUDIENCE });

createServer(async (req, res) => {
  const result = await verifyRequest(req);
  if (!result.ok) return sendError(res, result);
  const { subject, scopes } = result.auth;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ subject, scopes }));
}).listen(Number(process.env.PORT ?? 4000));
