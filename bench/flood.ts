// A login flood, run as its own process by bench/run.ts so that generating it
// does not share an event loop with the latencies being measured: failed
// password logins of unknown users, each from its own end-user IP (through a
// trusted gateway client, so no per-IP or per-username limit answers them),
// at FLOOD_RATE requests/s for FLOOD_SECONDS. Prints one JSON line: the
// count and latency percentiles of the answers by status.
import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';

const url = process.env.FLOOD_URL!;
const auth = process.env.FLOOD_AUTH!;
const rate = Number(process.env.FLOOD_RATE ?? 600);
const seconds = Number(process.env.FLOOD_SECONDS ?? 20);
const connections = Number(process.env.FLOOD_CONNECTIONS ?? 64);

let n = 0;
const latencies = new Map<number, number[]>();
let finished: (r: autocannon.Result) => void = () => {};
const done = new Promise<autocannon.Result>((resolve) => (finished = resolve));
const options: autocannon.Options = {
  url,
  connections,
  overallRate: rate,
  duration: seconds,
  requests: [
    {
      method: 'POST',
      path: '/token',
      setupRequest(req) {
        n++;
        const ip = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
        return {
          ...req,
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth, 'x-end-user-ip': ip },
          body: new URLSearchParams({
            grant_type: 'password',
            username: `nobody-${randomBytes(6).toString('hex')}@example.com`,
            password: 'not the password',
          }).toString(),
        };
      },
    },
  ],
};
const instance = autocannon(options, (err, result) => {
  if (err) throw err;
  finished(result);
});
instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
  const list = latencies.get(status) ?? [];
  list.push(ms);
  latencies.set(status, list);
});
const result = await done;
const pct = (sorted: number[], q: number) => Number((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(1));
const byStatus = Object.fromEntries(
  [...latencies].map(([status, list]) => {
    list.sort((a, b) => a - b);
    return [status, { count: list.length, p50_ms: pct(list, 0.5), p99_ms: pct(list, 0.99) }];
  }),
);
process.stdout.write(
  `${JSON.stringify({ offered_rps: rate, sent_rps: Math.round(result.requests.total / result.duration), errors: result.errors + result.timeouts, by_status: byStatus })}\n`,
);
