// Benchmark plumbing: spawn a real service (or a baseline server) on
// loopback, drive it with autocannon for a bounded time, read its memory.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import autocannon from 'autocannon';

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);

// Per-core figures: the server under test (service or baseline) runs on one
// core, this process (the load generator, and every child it starts without
// a core of its own) on another. BENCH_PIN=0 turns it off; without taskset or
// with one core there is nothing to pin. Redis and Postgres are not pinned.
export const PIN = process.env.BENCH_PIN !== '0' && availableParallelism() >= 2 && hasTaskset();
export const SERVER_CPU = process.env.BENCH_SERVER_CPU ?? '1';
export const LOAD_CPU = process.env.BENCH_LOAD_CPU ?? '0';
if (PIN) execFileSync('taskset', ['-a', '-p', '-c', LOAD_CPU, String(process.pid)], { stdio: 'ignore' });

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The command line that runs `node <script> <args>` on the server core. */
export function onServerCore(script: string, args: string[]): [string, string[]] {
  return PIN ? ['taskset', ['-c', SERVER_CPU, process.execPath, script, ...args]] : [process.execPath, [script, ...args]];
}

export type Load = {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  errors: number;
  non2xx: number;
  /** CPU time (user + system, every thread) the server spent per answered request, when measured (onCpu). */
  cpuMs?: number;
};

// A free loopback port and a fresh migrated database: the test harness's own helpers.
export { freePort, freshDatabase } from '../test/support/service.ts';

export type Proc = { url: string; pid: number; child: ChildProcess; stop(): Promise<void> };

/** Starts `node <script> <args>` on the server core and waits until it prints `ready`. */
export async function startProcess(script: string, args: string[], env: NodeJS.ProcessEnv, ready: RegExp, url: string): Promise<Proc> {
  const [command, argv] = onServerCore(script, args);
  const child = spawn(command, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d;
      if (ready.test(out)) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        child.stderr!.resume();
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d) => (out += d));
    child.once('exit', (code) => reject(new Error(`${script} exited ${code}:\n${out}`)));
  });
  return {
    url,
    pid: child.pid!,
    child,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}

/** CPU time (user + system, all threads) a process has used, in ms (/proc/<pid>/stat, clock ticks of 10 ms). */
export async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime (fields 14 and 15)
}

/**
 * A measurement of server `pid` with its CPU time per answered request: the
 * per-core cost, which the machine's other load does not change (unlike the
 * request rate), so per-core capacity = 1000 / cpuMs requests/s.
 */
export async function onCpu(pid: number, measure: () => Promise<Load>): Promise<Load> {
  const before = await cpuMs(pid);
  const result = await measure();
  const used = (await cpuMs(pid)) - before;
  return { ...result, cpuMs: result.requests ? Math.round((used / result.requests) * 1000) / 1000 : undefined };
}

export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

export type Request = {
  method?: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Per-connection state, for flows such as refresh-token chaining. */
  setupRequest?: autocannon.Request['setupRequest'];
  onResponse?: autocannon.Request['onResponse'];
};

export async function load(base: string, req: Request, connections: number, seconds = SECONDS): Promise<Load> {
  const result = await autocannon({
    url: base,
    connections,
    duration: seconds,
    requests: [
      {
        method: req.method ?? 'GET',
        path: req.path,
        headers: req.headers,
        body: req.body,
        ...(req.setupRequest ? { setupRequest: req.setupRequest } : {}),
        ...(req.onResponse ? { onResponse: req.onResponse } : {}),
      },
    ],
  });
  return {
    // Only successful answers count: a shed (503) or throttled (429) request
    // is fast and would flatter the figure.
    rps: result['2xx'] / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

/**
 * A closed-loop load for stateful flows: each of `workers` sends one request,
 * waits for its answer, derives the next request from it, and so on. Used for
 * refresh-token chains (autocannon prepares a connection's next request before
 * it reports the previous response, which would replay consumed tokens).
 */
export async function chain(
  base: string,
  workers: number,
  next: (worker: number, previous: { status: number; body: string } | undefined) => Promise<RequestInit & { path: string }>,
  seconds = SECONDS,
  /** Each worker's last answer, when the time is up (a chain continued by a later call keeps its state). */
  last?: (worker: number, previous: { status: number; body: string } | undefined) => void,
): Promise<Load> {
  const latencies: number[] = [];
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      let previous: { status: number; body: string } | undefined;
      while (performance.now() < deadline) {
        const { path, ...init } = await next(w, previous);
        const started = performance.now();
        try {
          const res = await fetch(base + path, init);
          previous = { status: res.status, body: await res.text() };
          latencies.push(performance.now() - started);
          if (res.ok) ok++;
          else non2xx++;
        } catch {
          errors++;
        }
      }
      last?.(w, previous);
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  return { rps: ok / seconds, p50: at(0.5), p99: at(0.99), requests: latencies.length, errors, non2xx };
}

/**
 * Service and baseline measured in alternating slices (BENCH_ROUNDS, default
 * 3, of SECONDS / rounds each, baseline first), so that whatever else the
 * machine does weighs on both alike: the ratio is what is compared. Request
 * rates are totals over all slices; p50 is the request-weighted mean of the
 * slices' p50s, p99 the largest slice p99.
 */
export async function interleaved(
  service: (seconds: number) => Promise<Load>,
  baseline: (seconds: number) => Promise<Load>,
  rounds = Number(process.env.BENCH_ROUNDS ?? 3),
): Promise<{ service: Load; baseline: Load }> {
  const slice = Math.max(1, SECONDS / rounds);
  const s: Load[] = [];
  const b: Load[] = [];
  for (let i = 0; i < rounds; i++) {
    b.push(await baseline(slice));
    s.push(await service(slice));
  }
  return { service: combine(s), baseline: combine(b) };
}

function combine(loads: Load[]): Load {
  const requests = loads.reduce((n, l) => n + l.requests, 0);
  const timed = loads.filter((l) => l.cpuMs !== undefined);
  const cpu = timed.length ? timed.reduce((n, l) => n + l.cpuMs! * l.requests, 0) / Math.max(1, timed.reduce((n, l) => n + l.requests, 0)) : undefined;
  return {
    ...(cpu === undefined ? {} : { cpuMs: Math.round(cpu * 1000) / 1000 }),
    rps: loads.reduce((n, l) => n + l.rps, 0) / loads.length,
    p50: Math.round((loads.reduce((n, l) => n + l.p50 * l.requests, 0) / Math.max(1, requests)) * 10) / 10,
    p99: Math.max(...loads.map((l) => l.p99)),
    requests,
    errors: loads.reduce((n, l) => n + l.errors, 0),
    non2xx: loads.reduce((n, l) => n + l.non2xx, 0),
  };
}
