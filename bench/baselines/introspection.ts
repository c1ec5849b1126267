// Baseline for introspection of a refresh token: plain node:http doing the
// irreducible work — read the form, one Redis read — per request.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { Redis } from 'ioredis';

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const key = `bench:baseline:${randomBytes(4).toString('hex')}:token`;
await redis.set(key, JSON.stringify({ sub: 'user', client_id: 'bench', scope: 'api:read', exp: Math.floor(Date.now() / 1000) + 3600 }), 'EX', 3600);

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    new URLSearchParams(Buffer.concat(chunks).toString()).get('token');
    const stored = JSON.parse((await redis.get(key)) ?? '{}') as Record<string, unknown>;
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify({ active: true, token_type: 'refresh_token', ...stored }));
  });
});
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => server.close(() => (redis.disconnect(), process.exit(0))));
