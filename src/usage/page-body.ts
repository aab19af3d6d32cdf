import { Readable } from 'node:stream';
import { StreamableFile } from '@nestjs/common';
import { stringifyExact } from '../common/json-decimal';

export interface PageBucket<R> {
  object: 'bucket';
  start_time: number;
  end_time: number;
  results: R[];
}

/** The `page` object of the usage report and of OpenAI's costs; its buckets may be made as they are read. */
export interface Page<R> {
  object: 'page';
  data: Iterable<PageBucket<R>> | AsyncIterable<PageBucket<R>>;
  has_more: boolean;
  next_page: string | null;
  /** Gives back what `data` holds (its database cursor) when the body is not read to the end. */
  close?(): Promise<void>;
}

/** Chunks of about this many characters. */
const CHUNK = 64 * 1024;

async function* pageJson<R>(page: Page<R>): AsyncGenerator<string> {
  let chunk = '{"object":"page","data":[';
  let first = true;
  for await (const bucket of page.data) {
    // Exact: a token sum past 2^53 is written with every digit (exactInteger).
    chunk += (first ? '' : ',') + stringifyExact(bucket);
    first = false;
    if (chunk.length >= CHUNK) {
      yield chunk;
      chunk = '';
    }
  }
  yield `${chunk}],"has_more":${page.has_more},"next_page":${JSON.stringify(page.next_page)}}`;
}

/**
 * A page as a JSON response body serialised bucket by bucket as the client reads it: a page of
 * tens of thousands of results (168 hourly buckets by key and user) never exists as one string
 * and one buffer of that size, and its rows are fetched from the database as the body is written.
 */
export function pageBody<R>(page: Page<R>): StreamableFile {
  // One chunk ahead of the socket at most: a client that reads slowly holds little of its page in memory.
  const stream = Readable.from(pageJson(page), { highWaterMark: 1 });
  // Ended, failed or cut by the client (even before its first read): the page's cursor is closed.
  stream.once('close', () => void page.close?.());
  return new StreamableFile(stream, { type: 'application/json; charset=utf-8' });
}
