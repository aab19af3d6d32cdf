import { Agent, request } from 'node:http';

export interface HttpResponse {
  status: number;
  text: string;
}

/**
 * A keep-alive HTTP/1.1 client (one socket per concurrent request, reused): what a gateway or a
 * dashboard backend holds open to the service. Latency is measured around {@link send}.
 */
export class HttpClient {
  private readonly agent: Agent;

  constructor(
    readonly baseUrl: string,
    private readonly key?: string,
    sockets = 1,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: sockets });
  }

  /** Sends a request and reads the whole body. */
  send(method: string, path: string, body?: string | Buffer, key = this.key): Promise<HttpResponse> {
    const url = new URL(path, this.baseUrl);
    const headers: Record<string, string | number> = {};
    if (key) headers.authorization = `Bearer ${key}`;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    return new Promise((resolve, reject) => {
      const req = request(url, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Sends JSON (or nothing) and returns the parsed answer; anything but the expected status throws. */
  async json<T = any>(method: string, path: string, body?: unknown, options: { key?: string; expect?: number } = {}): Promise<T> {
    const res = await this.send(method, path, body === undefined ? undefined : JSON.stringify(body), options.key ?? this.key);
    const expect = options.expect ?? 200;
    if (res.status !== expect) throw new Error(`${method} ${path}: expected ${expect}, got ${res.status} ${res.text.slice(0, 500)}`);
    return (res.text ? JSON.parse(res.text) : undefined) as T;
  }

  close(): void {
    this.agent.destroy();
  }
}
