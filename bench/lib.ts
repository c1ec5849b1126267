// Benchmark plumbing: spawn a real service (or a baseline server) on
// loopback, drive it with autocannon for a bounded time, read its memory.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import autocannon from 'autocannon';

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);

export type Load = { rps: number; p50: number; p99: number; requests: number; errors: number; non2xx: number };

// A free loopback port and a fresh migrated database: the test harness's own helpers.
export { freePort, freshDatabase } from '../test/support/service.ts';

export type Proc = { url: string; pid: number; child: ChildProcess; stop(): Promise<void> };

/** Starts `node <script> <args>` and waits until it prints `ready`. */
export async function startProcess(script: string, args: string[], env: NodeJS.ProcessEnv, ready: RegExp, url: string): Promise<Proc> {
  const child = spawn(process.execPath, [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  return { rps: ok / seconds, p50: at(0.5), p99: at(0.99), requests: latencies.length, errors, non2xx };
}
