// Starts throwaway Redis topologies from Debian's redis-server on free
// loopback ports, in a temporary directory: a Cluster (masters + replicas) and
// a primary + replica watched by sentinels. Every process started here is
// killed by stopAll(), and on exit if a test dies first.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './service.ts';

const run = promisify(execFile);
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export type RedisNode = { port: number; kill(): Promise<void>; restart(extra?: string[]): Promise<void> };

export async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 10_000 });
  return stdout;
}

/** Polls until check() is true; throws with `what` after timeoutMs. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function startNode(dir: string, port: number, args: string[]): Promise<RedisNode> {
  const conf = join(dir, `${port}.conf`);
  // Sentinel rewrites its config file, so every node gets one (maybe empty).
  await writeFile(conf, args.filter((a) => a.startsWith('sentinel ')).join('\n') + '\n');
  const flagsOf = (list: string[]) =>
    list.filter((a) => !a.startsWith('sentinel ')).flatMap((a) => (a.startsWith('--') ? [a] : a.split(' ').map((w, i) => (i ? w : `--${w}`))));
  let proc: ChildProcess;
  const spawnNode = async (extra: string[] = []) => {
    proc = spawn(
      'redis-server',
      [conf, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', join(dir, `${port}.log`), ...flagsOf([...args, ...extra])],
      { stdio: 'ignore' },
    );
    const p = proc;
    running.add(p);
    p.once('exit', () => running.delete(p));
    await until(`redis on ${port}`, async () => (await cli(port, 'ping')).trim() === 'PONG', 15_000);
  };
  await spawnNode();
  const node: RedisNode = {
    port,
    async kill() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      proc.kill('SIGKILL');
      await exited;
    },
    // Like a restarted pod: same port, same config (a Cluster node keeps its
    // nodes.conf and rejoins), empty data; `extra` adds settings for this start.
    async restart(extra: string[] = []) {
      await node.kill();
      await spawnNode(extra);
    },
  };
  return node;
}

// The setup README recommends with REDIS_WAIT_REPLICAS=1: a primary left
// without a replica refuses writes (so a refresh token is not consumed when its
// successor could not be made safe) instead of accepting them and failing WAIT.
const NO_LONE_WRITES = ['min-replicas-to-write 1', 'min-replicas-max-lag 10'];

export type Topology = {
  env: Record<string, string>;
  nodes: RedisNode[];
  stop(): Promise<void>;
};

async function topology(build: (dir: string, nodes: RedisNode[]) => Promise<Record<string, string>>): Promise<Topology> {
  const dir = await mkdtemp(join(tmpdir(), 'idp-redis-'));
  const nodes: RedisNode[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    return { env: await build(dir, nodes), nodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** `masters` masters with one replica each; REDIS_CLUSTER_NODES names them all. */
export function startCluster(masters = 3): Promise<Topology> {
  return topology(async (dir, nodes) => {
    for (let i = 0; i < masters * 2; i++) {
      const [port, bus] = [await freePort(), await freePort()];
      nodes.push(
        await startNode(dir, port, [
          'cluster-enabled yes',
          `cluster-config-file nodes-${port}.conf`,
          `cluster-port ${bus}`,
          'cluster-node-timeout 1000',
          ...NO_LONE_WRITES,
        ]),
      );
    }
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'], {
      timeout: 30_000,
    });
    await until('cluster state ok on every node', async () => {
      const infos = await Promise.all(nodes.map((n) => cli(n.port, 'cluster', 'info')));
      return infos.every((i) => i.includes('cluster_state:ok') && i.includes(`cluster_known_nodes:${nodes.length}`));
    });
    await until('replicas in sync', async () => {
      const roles = await Promise.all(nodes.map((n) => cli(n.port, 'info', 'replication')));
      return roles.filter((r) => r.includes('master_link_status:up')).length === masters;
    });
    return { REDIS_URL: '', REDIS_CLUSTER_NODES: nodes.map((n) => `127.0.0.1:${n.port}`).join(',') };
  });
}

/** A primary (nodes[0]), a replica (nodes[1]) and three sentinels (quorum 2). */
export function startSentinel(name = 'idp'): Promise<Topology> {
  return topology(async (dir, nodes) => {
    const primary = await startNode(dir, await freePort(), NO_LONE_WRITES);
    nodes.push(primary);
    nodes.push(await startNode(dir, await freePort(), [`replicaof 127.0.0.1 ${primary.port}`, ...NO_LONE_WRITES]));
    await until('replica in sync', async () => (await cli(nodes[1]!.port, 'info', 'replication')).includes('master_link_status:up'));
    for (let i = 0; i < 3; i++) {
      nodes.push(
        await startNode(dir, await freePort(), [
          `sentinel monitor ${name} 127.0.0.1 ${primary.port} 2`,
          `sentinel down-after-milliseconds ${name} 1000`,
          `sentinel failover-timeout ${name} 5000`,
          '--sentinel',
        ]),
      );
    }
    const sentinels = nodes.slice(2);
    await until('sentinels see the replica and each other', async () => {
      const views = await Promise.all(sentinels.map((s) => cli(s.port, 'sentinel', 'master', name)));
      return views.every((v) => /num-slaves\n1\n/.test(v) && /num-other-sentinels\n2\n/.test(v));
    });
    return {
      REDIS_URL: '',
      REDIS_SENTINELS: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
      REDIS_SENTINEL_NAME: name,
    };
  });
}

/** The port of the node the sentinels currently name as primary. */
export async function sentinelPrimary(sentinelPort: number, name = 'idp'): Promise<number> {
  const out = (await cli(sentinelPort, 'sentinel', 'get-master-addr-by-name', name)).trim().split('\n');
  return Number(out[1]);
}
