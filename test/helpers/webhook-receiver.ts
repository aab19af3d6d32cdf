import { createServer, IncomingHttpHeaders, Server } from 'node:http';
import { AddressInfo } from 'node:net';

export interface ReceivedWebhook {
  method: string;
  path: string;
  headers: Record<string, string>;
  /** The body exactly as received. */
  body: string;
}

/** How the receiver answers one request: a status, `hang` (never answers), or `slow` (200 after a pause). */
export type Reply = number | 'hang' | { status: number; afterMs: number };

export interface WebhookReceiver {
  url: string;
  port: number;
  requests: ReceivedWebhook[];
  /** Answers for the next requests, in order; afterwards 200. */
  replies: Reply[];
  close(): Promise<void>;
}

function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]));
}

/** A real HTTP server on loopback that records every request it receives. */
export async function startReceiver(options: { port?: number; replies?: Reply[] } = {}): Promise<WebhookReceiver> {
  const requests: ReceivedWebhook[] = [];
  const replies: Reply[] = [...(options.replies ?? [])];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', path: req.url ?? '', headers: flatHeaders(req.headers), body: Buffer.concat(chunks).toString('utf8') });
      const reply = replies.shift() ?? 200;
      if (reply === 'hang') return;
      if (typeof reply === 'number') {
        res.writeHead(reply, reply >= 300 && reply < 400 ? { location: 'http://127.0.0.1:9/elsewhere' } : {}).end('ok');
      } else {
        setTimeout(() => res.writeHead(reply.status).end('ok'), reply.afterMs);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hooks/tally`,
    port,
    requests,
    replies,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port nothing listens on (for connection-refused tests). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
