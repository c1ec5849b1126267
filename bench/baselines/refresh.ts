// Baseline for the refresh grant: plain node:http doing the irreducible work
// of a refresh — one Redis round trip and one ES256 signature — per request.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { generateKeyPair, SignJWT } from 'jose';

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const { privateKey } = await generateKeyPair('ES256');
const prefix = `bench:baseline:${randomBytes(4).toString('hex')}:`;

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const token = randomBytes(32).toString('base64url');
    await redis.set(prefix + token, Buffer.concat(chunks).toString(), 'EX', 60);
    const jwt = await new SignJWT({ scope: 'api:read', roles: ['viewer'] })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
      .setIssuer('http://127.0.0.1')
      .setSubject('user')
      .setAudience('api://default')
      .setIssuedAt()
      .setExpirationTime('15m')
      .sign(privateKey);
    const body = JSON.stringify({ access_token: jwt, token_type: 'Bearer', expires_in: 900, refresh_token: token });
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(body);
  });
});
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => server.close(() => (redis.disconnect(), process.exit(0))));
