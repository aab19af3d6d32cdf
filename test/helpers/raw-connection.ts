import { connect, Socket } from 'node:net';

/** A raw HTTP/1.1 connection to an app (for what fetch will not send): what it received, whether it closed, its error. */
export class RawConnection {
  readonly socket: Socket;
  text = '';
  closed = false;
  error: Error | undefined;

  constructor(baseUrl: string) {
    const url = new URL(baseUrl);
    this.socket = connect(Number(url.port), url.hostname);
    this.socket.on('data', (chunk) => (this.text += chunk));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', (err) => (this.error = err));
  }

  /** Writes, waiting while the socket's buffer is full (or until it closes). */
  async send(data: Buffer | string): Promise<void> {
    if (!this.socket.write(data)) await new Promise((resolve) => this.socket.once('drain', resolve).once('close', resolve));
  }

  /** True once a whole JSON answer has arrived. */
  answered(): boolean {
    return /\r\n\r\n\{.*\}$/s.test(this.text);
  }
}
