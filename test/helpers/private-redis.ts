import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { freePort } from '../../src/database/embedded-postgres';
import { redisAnswers } from '../../src/redis/redis';
import { waitFor } from './wait-for';

/**
 * A redis-server of the test's own on a free port, for tests that stop, pause, restart or flush
 * Redis (never the shared one on 6379). With `persist`, an append-only file keeps its data across
 * {@link PrivateRedis.restart}.
 */
export interface PrivateRedis {
  url: string;
  port: number;
  /** Stops it (SIGTERM: with `persist`, the data is written out first). */
  stop(): Promise<void>;
  /** Starts it again on the same port (with `persist`, with the data it had). */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Freezes it (SIGSTOP): connections stay open, nothing answers. */
  pause(): void;
  resume(): void;
  flush(): Promise<void>;
  /** Runs one command on a connection of its own. */
  command(...args: string[]): Promise<unknown>;
  /** Stops it for good and removes its files. */
  close(): Promise<void>;
}

export async function startPrivateRedis(options: { persist?: boolean } = {}): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tally-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;

  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', options.persist ? 'yes' : 'no', '--dir', dir], { stdio: 'ignore' });
    await waitFor(() => redisAnswers(url, 300), `redis-server on port ${port} to answer`);
  };
  const stop = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    running.kill('SIGCONT');
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGTERM');
    await exited;
  };
  const command = async (...args: string[]) => {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await client.call(args[0], ...args.slice(1));
    } finally {
      client.disconnect();
    }
  };
  await start();
  return {
    url,
    port,
    stop,
    start,
    restart: async () => {
      await stop();
      await start();
    },
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    flush: async () => {
      await command('FLUSHDB');
    },
    command,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
