import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

export interface ServiceOptions {
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  port: number;
  adminKey: string;
  secretsKey: string;
}

/** Resident memory of a process, MB (Linux: /proc/<pid>/status); null elsewhere. */
export function residentMb(pid: number): { rss: number; peak: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
  } catch {
    return null;
  }
}

/**
 * The real service as its own process (`node dist/src/main.js`, PROCESS_ROLE=api), so that its
 * memory can be read from outside and the benchmark's own work does not count in it. Its RSS is
 * sampled every 50 ms and the peak kept per phase.
 */
export class ServiceProcess {
  readonly baseUrl: string;
  private readonly output: string[] = [];
  private exited = false;
  private phase = 'start-up';
  readonly peaks = new Map<string, number>();
  private readonly sampler: NodeJS.Timeout;

  private constructor(
    private readonly child: ChildProcess,
    port: number,
  ) {
    this.baseUrl = `http://127.0.0.1:${port}`;
    // BENCH_SERVICE_LOG: also append everything the service writes to this file (e.g. with --trace-gc).
    const log = process.env.BENCH_SERVICE_LOG;
    const keep = (chunk: Buffer) => {
      if (log) appendFileSync(log, chunk);
      this.output.push(chunk.toString('utf8'));
      if (this.output.length > 200) this.output.shift();
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('exit', () => (this.exited = true));
    this.sampler = setInterval(() => this.sample(), 50);
    this.sampler.unref();
  }

  static async start(options: ServiceOptions, distDir: string): Promise<ServiceProcess> {
    // Another process on the port (an earlier run still going) would answer the readiness probe,
    // and the run would measure it, or fail later on its admin key.
    if (await portAnswers(options.port)) throw new Error(`port ${options.port} is already in use: stop what listens there or pass another --port`);
    // BENCH_SERVICE_NODE_ARGS: extra node flags for the service under test (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
    const nodeArgs = (process.env.BENCH_SERVICE_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const child = spawn(process.execPath, [...nodeArgs, join(distDir, 'src', 'main.js')], {
      env: {
        ...process.env,
        PROCESS_ROLE: 'api',
        LOG_LEVEL: 'warn',
        HOST: '127.0.0.1',
        PORT: String(options.port),
        DATABASE_URL: options.databaseUrl,
        REDIS_URL: options.redisUrl,
        REDIS_PREFIX: options.redisPrefix,
        ADMIN_API_KEY: options.adminKey,
        SECRETS_KEY: options.secretsKey,
        WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', // part 4's receiver is on loopback
        // The per-key rate limiter stays in the path (one Redis call per request) but never trips.
        RATE_LIMIT_PER_SECOND: '1000000',
        RATE_LIMIT_BURST: '10000000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const service = new ServiceProcess(child, options.port);
    await service.waitReady();
    return service;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Starts a new phase of the peak-RSS bookkeeping. */
  enter(phase: string): void {
    this.sample();
    this.phase = phase;
    this.sample();
  }

  /** The process's high-water mark of resident memory (VmHWM), MB. */
  peakMb(): number | null {
    return residentMb(this.pid)?.peak ?? null;
  }

  async stop(): Promise<void> {
    clearInterval(this.sampler);
    if (this.exited) return;
    const exit = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    await exit;
    clearTimeout(timer);
  }

  /** The last lines the service wrote (for failures). */
  tail(): string {
    return this.output.join('').split('\n').slice(-30).join('\n');
  }

  private sample(): void {
    if (this.exited) return;
    const memory = residentMb(this.pid);
    if (memory) this.peaks.set(this.phase, Math.max(this.peaks.get(this.phase) ?? 0, memory.rss));
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      if (this.exited) throw new Error(`the service exited during start-up:\n${this.tail()}`);
      try {
        const res = await fetch(`${this.baseUrl}/health/ready`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await this.stop();
    throw new Error(`the service did not become ready in 90 s:\n${this.tail()}`);
  }
}

/** True when something accepts connections on 127.0.0.1:`port`. */
function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
