// Baseline for the password grant: raw argon2.verify at the service's
// parameters and concurrency, in a process pinned like the service.
// Prints the verifications per second.
import argon2 from 'argon2';

const params = { memoryCost: Number(process.env.M), timeCost: Number(process.env.T), parallelism: Number(process.env.P) };
const concurrency = Number(process.env.CONCURRENCY ?? 1);
const seconds = Number(process.env.SECONDS ?? 5);
const hash = await argon2.hash('bench password 123', { type: argon2.argon2id, ...params });
const cpu = process.cpuUsage();
const deadline = performance.now() + seconds * 1000;
let done = 0;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      await argon2.verify(hash, 'bench password 123');
      done++;
    }
  }),
);
const used = process.cpuUsage(cpu);
// CPU per verification (every thread of the process): the per-core cost.
console.log(JSON.stringify({ rps: done / seconds, requests: done, cpuMs: (used.user + used.system) / 1000 / Math.max(1, done) }));
