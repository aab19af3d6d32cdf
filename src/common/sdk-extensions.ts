import { ApiExtension, OpenAPIObject } from '@nestjs/swagger';

/**
 * OpenAPI extensions that SDK generators (Speakeasy, and generators that read its extensions)
 * turn into features: automatic paging over cursor-paged operations, and retries.
 */

interface CursorPaging {
  /** The query parameter that takes the cursor. */
  cursor: string;
  /** JSONPath of the next cursor in the response (null or absent on the last page). */
  nextCursor: string;
  /** JSONPath of the page's items. */
  results: string;
  /** The query parameter of the page size, if any. */
  limit?: string;
}

/** Reports paged by an opaque `page` cursor (`next_page`, null on the last page). */
export const PAGE_CURSOR: CursorPaging = { cursor: 'page', limit: 'limit', nextCursor: '$.next_page', results: '$.data' };
/** Lists paged by the id of the last item (`after` = `last_id` of the previous page; an empty page ends). */
export const AFTER_LAST_ID: CursorPaging = { cursor: 'after', limit: 'limit', nextCursor: '$.last_id', results: '$.data' };

/** `x-speakeasy-pagination` of a cursor-paged operation: one decorator for every paged report and list. */
export function CursorPaginated(paging: CursorPaging): MethodDecorator {
  return ApiExtension('x-speakeasy-pagination', {
    type: 'cursor',
    inputs: [
      { name: paging.cursor, in: 'parameters', type: 'cursor' },
      ...(paging.limit ? [{ name: paging.limit, in: 'parameters', type: 'limit' }] : []),
    ],
    outputs: { nextCursor: paging.nextCursor, results: paging.results },
  });
}

/** Marks a POST that is safe to repeat (idempotent by design): SDKs may retry it. */
export const IDEMPOTENT_EXTENSION = 'x-tally-idempotent';
export const Idempotent = (): MethodDecorator => ApiExtension(IDEMPOTENT_EXTENSION, true);

/**
 * Retries for server errors and timeouts only: 5XX and 408, never a 4xx answer such as a budget
 * denial (429/403) or the per-key rate limit, which retrying cannot fix within a call.
 */
export const SDK_RETRIES = {
  strategy: 'backoff',
  backoff: { initialInterval: 500, maxInterval: 30_000, maxElapsedTime: 120_000, exponent: 1.5 },
  statusCodes: ['5XX', '408'],
  retryConnectionErrors: true,
} as const;

const RETRYABLE_METHODS = new Set(['get', 'head', 'put', 'delete']);

/**
 * Adds `x-speakeasy-retries` to every operation that is safe to send twice: GET, PUT and DELETE,
 * and POSTs marked {@link Idempotent}. Creating POSTs (an org, a key, a redelivery) get none.
 */
export function addSdkRetries(document: OpenAPIObject): OpenAPIObject {
  for (const item of Object.values(document.paths) as Array<Record<string, Record<string, unknown>>>) {
    for (const [method, operation] of Object.entries(item)) {
      if (typeof operation !== 'object' || operation === null || !('responses' in operation)) continue;
      const idempotent = operation[IDEMPOTENT_EXTENSION] === true;
      delete operation[IDEMPOTENT_EXTENSION];
      if (RETRYABLE_METHODS.has(method) || idempotent) operation['x-speakeasy-retries'] = SDK_RETRIES;
    }
  }
  return document;
}
