import { Agent, request } from 'node:http';
import { createSystemKey, seedOrg, startTestApp } from './helpers/test-app';

/**
 * Shutting down under keep-alive connections (a gateway's pool, nginx's `keepalive`): a request
 * in flight when the app starts to close is answered with `Connection: close` and its socket is
 * ended, so the process does not wait for its forced exit; a request that still arrives on an
 * open connection gets the one error shape (503 not_ready, X-Request-ID, Retry-After).
 */
describe('graceful shutdown with keep-alive connections', () => {
  it('answers the in-flight request with Connection: close, ends its socket, and lets close() finish', async () => {
    const t = await startTestApp();
    const ingestKey = (await createSystemKey(t, 'ingest')).key;
    const org = await seedOrg(t, 'Draining');
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const body = JSON.stringify({ records: [{ id: `drain-${Date.now()}`, api_key_id: org.member.id, model: 'm', input_tokens: 1, output_tokens: 1, created_at: Math.floor(Date.now() / 1000) }] });
    let socketClosed = false;
    const answer = new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
      const req = request(
        `${t.baseUrl}/api/v1/llm/usage/records`,
        { method: 'POST', agent, headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
        },
      );
      req.on('socket', (socket) => socket.on('close', () => (socketClosed = true)));
      req.on('error', reject);
      req.write(body.slice(0, 10)); // in flight when the close starts
      setTimeout(() => req.end(body.slice(10)), 500);
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const closing = t.close();
    const res = await answer;
    expect(res).toEqual({ status: 200, connection: 'close' });
    await closing; // without the fix it waited for the kept-alive socket to time out
    expect(socketClosed).toBe(true);
    agent.destroy();
  }, 30_000);
});
