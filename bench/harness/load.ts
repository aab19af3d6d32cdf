import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { LatencySummary, summarize } from './stats';

/** The part of autocannon's programmatic API used here (it ships no types). */
export interface LoadRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}
interface AutocannonInstance {
  on(event: 'response', listener: (client: unknown, statusCode: number, bytes: number, responseTimeMs: number) => void): void;
}
type Autocannon = (
  options: { url: string; connections: number; duration: number; requests: LoadRequest[]; idReplacement?: boolean },
  done: (err: Error | null, result: { errors: number; timeouts: number; non2xx: number; duration: number }) => void,
) => AutocannonInstance;

export interface LoadResult {
  requestsPerSecond: number;
  requests: number;
  /** Exact latencies of every 2xx answer (autocannon's own histogram rounds to whole milliseconds). */
  latency: LatencySummary;
  errors: number;
  /** CPU time the service spent per request (µs), and its CPU use during the run (1 = one core). */
  serviceCpuPerRequestUs?: number;
  serviceCpuUse?: number;
}

interface LoadSpec {
  url: string;
  requests: LoadRequest[];
  connections: number;
  seconds: number;
  /** Replace `[<id>]` in bodies by a unique id per request (autocannon's idReplacement). */
  idReplacement?: boolean;
}

/**
 * Closed-loop load with autocannon: `connections` keep-alive connections, each sending its next
 * request as soon as the previous answer arrives, for `seconds`; the requests are sent in turn.
 */
function loadHere(spec: LoadSpec): Promise<LoadResult> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const autocannon = require('autocannon') as Autocannon;
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    const instance = autocannon({ url: spec.url, connections: spec.connections, duration: spec.seconds, requests: spec.requests, idReplacement: spec.idReplacement }, (err, result) => {
      if (err) return reject(err);
      resolve({
        requestsPerSecond: latencies.length / result.duration,
        requests: latencies.length,
        latency: summarize(latencies),
        errors: result.errors + result.timeouts + result.non2xx,
      });
    });
    instance.on('response', (_client, status, _bytes, ms) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    });
  });
}

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU time of a process (Linux), ms; null elsewhere. */
export function cpuMs(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/**
 * Runs the load from a fresh child process (its own core's worth of event loop, not the runner's
 * large heap), and reads the service's CPU time around it when its pid is given.
 */
export async function runLoad(url: string, requests: LoadRequest[], connections: number, seconds: number, servicePid?: number, idReplacement = false): Promise<LoadResult> {
  const child = spawn(process.execPath, [__filename], { stdio: ['pipe', 'pipe', 'inherit'] });
  const output: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => output.push(chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const before = servicePid === undefined ? null : cpuMs(servicePid);
  child.stdin.end(JSON.stringify({ url, requests, connections, seconds, idReplacement } satisfies LoadSpec));
  const code = await exited;
  const after = servicePid === undefined ? null : cpuMs(servicePid);
  if (code !== 0) throw new Error(`the load generator exited with ${code}`);
  const result = JSON.parse(Buffer.concat(output).toString('utf8')) as LoadResult;
  if (before !== null && after !== null && result.requests > 0) {
    result.serviceCpuPerRequestUs = ((after - before) * 1000) / result.requests;
    result.serviceCpuUse = (after - before) / 1000 / seconds;
  }
  return result;
}

if (require.main === module) {
  const chunks: Buffer[] = [];
  process.stdin.on('data', (chunk: Buffer) => chunks.push(chunk));
  process.stdin.on('end', () => {
    loadHere(JSON.parse(Buffer.concat(chunks).toString('utf8')) as LoadSpec).then(
      (result) => process.stdout.write(JSON.stringify(result)),
      (err: unknown) => {
        process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  });
}
