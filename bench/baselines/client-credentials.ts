// Baseline for the client_credentials grant: plain node:http doing the
// irreducible work — read the form, one ES256 signature — per request.
import { createServer } from 'node:http';
import { generateKeyPair, SignJWT } from 'jose';

const { privateKey } = await generateKeyPair('ES256');

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const scope = new URLSearchParams(Buffer.concat(chunks).toString()).get('scope') ?? '';
    const jwt = await new SignJWT({ scope, client_id: 'bench' })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
      .setIssuer('http://127.0.0.1')
      .setSubject('bench')
      .setAudience('api://default')
      .setIssuedAt()
      .setExpirationTime('15m')
      .sign(privateKey);
    const body = JSON.stringify({ access_token: jwt, token_type: 'Bearer', expires_in: 900, scope });
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(body);
  });
});
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
