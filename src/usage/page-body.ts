import { Readable } from 'node:stream';
import { StreamableFile } from '@nestjs/common';

export interface PageBucket<R> {
  object: 'bucket';
  start_time: number;
  end_time: number;
  results: R[];
}

/** The `page` object of the usage report and of OpenAI's costs; its buckets may be made as they are read. */
export interface Page<R> {
  object: 'page';
  data: Iterable<PageBucket<R>>;
  has_more: boolean;
  next_page: string | null;
}

/** Chunks of about this many characters. */
const CHUNK = 64 * 1024;

function* pageJson<R>(page: Page<R>): Generator<string> {
  let chunk = '{"object":"page","data":[';
  let first = true;
  for (const bucket of page.data) {
    chunk += (first ? '' : ',') + JSON.stringify(bucket);
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
 * and one buffer of that size.
 */
export function pageBody<R>(page: Page<R>): StreamableFile {
  return new StreamableFile(Readable.from(pageJson(page)), { type: 'application/json; charset=utf-8' });
}
