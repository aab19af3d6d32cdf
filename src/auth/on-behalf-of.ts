import { AppException, ErrorCode } from '../common/errors';

const PRINTABLE_ASCII = /^[\x20-\x7E]{1,150}$/;

/** Parses X-On-Behalf-Of: absent → null; 1-150 printable ASCII characters, not `*`; anything else → 400. */
export function parseOnBehalfOf(header: string | string[] | undefined): string | null {
  if (header === undefined) return null;
  const invalid = () =>
    AppException.badRequest(
      ErrorCode.InvalidOnBehalfOf,
      'X-On-Behalf-Of must be one value of 1-150 printable ASCII characters, and not "*"',
      'X-On-Behalf-Of',
    );
  if (Array.isArray(header)) throw invalid();
  if (!PRINTABLE_ASCII.test(header) || header === '*') throw invalid();
  return header;
}
