// A login flood, run as its own process by bench/run.ts so that generating it
// does not share an event loop with the latencies being measured: failed
// password logins of unknown users, each from its own end-user IP (through a
// trusted gateway client, so no per-IP or per-username limit answers them),
// at FLOOD_RATE requests/s for FLOOD_SECONDS.
//
// Open loop: requests leave on a fixed schedule (every 2 ms, as many as are
// due) whatever the answers do, over up to FLOOD_CONNECTIONS keep-alive
// connections, and each latency runs from its scheduled time, so a server
// that falls behind shows it (a closed-loop tool would just send less).
// Prints one JSON line: the count and latency percentiles of the answers by status.
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';

const url = new URL(process.env.FLOOD_URL!);
const auth = process.env.FLOOD_AUTH!;
const rate = Number(process.env.FLOOD_RATE ?? 600);
const seconds = Number(process.env.FLOOD_SECONDS ?? 20);
const connections = Number(process.env.FLOOD_CONNECTIONS ?? 64);

const agent = new Agent({ keepAlive: true, maxSockets: connections });
const latencies = new Map<number, number[]>();
let sent = 0;
let errors = 0;
let pending = 0;

function send(n: number, scheduledAt: number) {
  const body = new URLSearchParams({
    grant_type: 'password',
    username: `nobody-${randomBytes(6).toString('hex')}@example.com`,
    password: 'not the password',
  }).toString();
  pending++;
  const req = request(
    {
      agent,
      host: url.hostname,
      port: url.port,
      method: 'POST',
      path: '/token',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'content-length': Buffer.byteLength(body),
        authorization: auth,
        'x-end-user-ip': `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
      },
    },
    (res) => {
      res.resume();
      res.on('end', () => {
        const list = latencies.get(res.statusCode!) ?? [];
        list.push(performance.now() - scheduledAt);
        latencies.set(res.statusCode!, list);
        pending--;
      });
    },
  );
  req.on('error', () => {
    errors++;
    pending--;
  });
  req.end(body);
}

const start = performance.now();
await new Promise<void>((resolve) => {
  const tick = setInterval(() => {
    const elapsed = performance.now() - start;
    const due = Math.min(rate * seconds, Math.floor((elapsed / 1000) * rate));
    while (sent < due) send(++sent, start + (sent * 1000) / rate);
    if (sent >= rate * seconds) {
      clearInterval(tick);
      resolve();
    }
  }, 2);
});
while (pending > 0) await new Promise((r) => setTimeout(r, 20));
agent.destroy();

const pct = (sorted: number[], q: number) => Number((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(1));
const byStatus = Object.fromEntries(
  [...latencies].map(([status, list]) => {
    list.sort((a, b) => a - b);
    return [status, { count: list.length, p50_ms: pct(list, 0.5), p99_ms: pct(list, 0.99) }];
  }),
);
process.stdout.write(
  `${JSON.stringify({ offered_rps: rate, sent_rps: Math.round(sent / seconds), errors, by_status: byStatus })}\n`,
);
