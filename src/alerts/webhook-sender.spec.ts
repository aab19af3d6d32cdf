import { createServer, IncomingHttpHeaders, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { sendWebhook } from './webhook-sender';

describe('sendWebhook', () => {
  let server: Server;
  let port: number;
  const seen: Array<{ headers: IncomingHttpHeaders; body: string }> = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({ headers: req.headers, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('connects to the checked address and keeps the URL\'s Host header, sending the exact bytes', async () => {
    const body = '{"a":"é"}';
    const result = await sendWebhook(new URL(`http://localhost:${port}/hook?x=1`), body, { 'webhook-id': 'alrt_1' }, { timeoutMs: 5000, allowPrivateTargets: true });
    expect(result).toMatchObject({ outcome: 'success', statusCode: 204, error: null });
    const last = seen[seen.length - 1];
    expect(last.headers.host).toBe(`localhost:${port}`);
    expect(last.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    expect(last.headers['webhook-id']).toBe('alrt_1');
    expect(last.body).toBe(body);
  });

  it('refuses private and metadata targets without sending anything, unless allowed', async () => {
    const before = seen.length;
    for (const url of [`http://127.0.0.1:${port}/x`, `http://localhost:${port}/x`, 'http://169.254.169.254/latest/meta-data']) {
      const result = await sendWebhook(new URL(url), '{}', {}, { timeoutMs: 5000, allowPrivateTargets: false });
      expect(result).toMatchObject({ outcome: 'refused_target', statusCode: null });
      expect(result.error).toMatch(/^refused target: /);
    }
    expect(seen.length).toBe(before);
  });
});
