import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, Socket } from 'node:net';
import { pauseThisProcess } from '../../test/helpers/pause';
import { withLateTimeout } from './late-timer';

/** An echo server in a process of its own: it answers while this one is paused. */
const ECHO_SERVER = `const s = require('node:net').createServer((c) => c.on('data', (d) => c.write(d)));
s.listen(0, '127.0.0.1', () => console.log(s.address().port));`;

describe('withLateTimeout', () => {
  let server: ChildProcess;
  let client: Socket;
  beforeAll(async () => {
    server = spawn(process.execPath, ['-e', ECHO_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [port] = await once(server.stdout!, 'data');
    client = connect(Number(String(port).trim()), '127.0.0.1');
    await once(client, 'connect');
  });
  afterAll(() => {
    client?.destroy();
    server?.kill();
  });

  const echo = (text: string) => {
    const answer = once(client, 'data').then(([chunk]) => String(chunk));
    client.write(text);
    return answer;
  };

  it('an answer that arrived while this process was paused beyond the timeout wins', async () => {
    const answer = withLateTimeout(echo('late-but-there'), 20);
    pauseThisProcess(200);
    await expect(answer).resolves.toBe('late-but-there');
  });

  it('a plain timer loses that race (why the verdict waits for one more poll of the sockets)', async () => {
    const answer = echo('plain');
    const plain = Promise.race([answer, new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 20))]);
    pauseThisProcess(200);
    await expect(plain).rejects.toThrow('timeout');
    await answer; // the answer was there all along
  });

  it('what does not settle rejects with the given error', async () => {
    await expect(withLateTimeout(new Promise(() => undefined), 20, () => new Error('gave up'))).rejects.toThrow('gave up');
  });
});
