import { AppException, ErrorCode } from '../common/errors';

/** 1-150 printable ASCII characters, and not exactly `*` (also the OpenAPI pattern of the header). */
export const ON_BEHALF_OF_PATTERN = /^(?!\*$)[\x20-\x7E]{1,150}$/;

/**
 * Parses X-On-Behalf-Of: absent → null; 1-150 printable ASCII characters, not `*`; anything else
 * → 400 (401 on a forward-auth route: see GATEWAY_KEY). It names an end user, so repeating the caller's own API key is refused too: a client that
 * sends its key for every security scheme of the document (as generated SDKs do with one `auth`
 * token) gets a clear 400 instead of its secret stored as a user id.
 */
export function parseOnBehalfOf(header: string | string[] | undefined, apiKeySecret?: string, status: 400 | 401 = 400): string | null {
  if (header === undefined) return null;
  const invalid = (message: string) =>
    status === 400 ? AppException.badRequest(ErrorCode.InvalidOnBehalfOf, message, 'X-On-Behalf-Of') : AppException.unauthorized(ErrorCode.InvalidOnBehalfOf, message);
  if (Array.isArray(header) || !ON_BEHALF_OF_PATTERN.test(header)) {
    throw invalid('X-On-Behalf-Of must be one value of 1-150 printable ASCII characters, and not "*"');
  }
  if (apiKeySecret !== undefined && header.includes(apiKeySecret)) {
    throw invalid('X-On-Behalf-Of names an end user; it must not repeat the API key (give the key to the bearer scheme only)');
  }
  return header;
}

/**
 * Every value of a header as sent, from the raw header list: Node joins repeated custom headers
 * into one string ("a, b"), which would read as one end user named "a, b".
 */
export function headerValues(rawHeaders: string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].toLowerCase() === name) values.push(rawHeaders[i + 1]);
  return values;
}
