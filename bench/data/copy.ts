import { once } from 'node:events';
import type { Client } from 'pg';

/** The parts of pg's connection a COPY FROM STDIN needs (pg.Connection; not in @types/pg). */
interface CopyConnection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
  sendCopyFail(message: string): void;
  stream: NodeJS.WritableStream & { writableNeedDrain?: boolean };
}

/**
 * `COPY … FROM STDIN` through pg's Submittable interface (what `pg-copy-streams` does, in a few
 * lines): pg 8 sends the query and hands us the connection when the server asks for data; we
 * write the chunks as CopyData messages, respecting the socket's back-pressure, then CopyDone.
 */
class CopyFromStdin {
  private failed = false;
  private rows = 0;
  readonly done: Promise<number>;
  private settle!: { resolve: (rows: number) => void; reject: (err: unknown) => void };

  constructor(
    private readonly text: string,
    private readonly chunks: Iterable<string> | AsyncIterable<string>,
  ) {
    this.done = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
  }

  submit(connection: CopyConnection): void {
    connection.query(this.text);
  }

  handleCopyInResponse(connection: CopyConnection): void {
    void this.pump(connection);
  }

  handleCommandComplete(msg: { text?: string }): void {
    this.rows = Number(/^COPY (\d+)/.exec(msg.text ?? '')?.[1] ?? 0);
  }

  handleError(err: unknown): void {
    this.failed = true;
    this.settle.reject(err);
  }

  handleReadyForQuery(): void {
    if (!this.failed) this.settle.resolve(this.rows);
  }

  // Never called for a COPY; present because pg calls whatever the active query implements.
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}

  private async pump(connection: CopyConnection): Promise<void> {
    try {
      for await (const chunk of this.chunks) {
        if (this.failed) break;
        connection.sendCopyFromChunk(Buffer.from(chunk));
        if (connection.stream.writableNeedDrain) await once(connection.stream, 'drain');
      }
    } catch (err) {
      // The server then rolls the COPY back and answers with an error (ignored: this one wins).
      connection.sendCopyFail(err instanceof Error ? err.message : String(err));
      this.handleError(err);
      return;
    }
    connection.endCopyFrom();
  }
}

/** Streams rows in PostgreSQL's text COPY format into `table (columns)`; resolves to the row count. */
export async function copyInto(client: Client, table: string, columns: readonly string[], chunks: Iterable<string> | AsyncIterable<string>): Promise<number> {
  const copy = new CopyFromStdin(`COPY ${table} (${columns.join(', ')}) FROM STDIN`, chunks);
  (client as unknown as { query(submittable: unknown): void }).query(copy);
  return copy.done;
}
