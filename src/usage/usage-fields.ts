import { ON_BEHALF_OF_PATTERN } from '../auth/on-behalf-of';
import { StringField } from '../common/validation';

/** Field rules shared by records, filters and the price book. */

/** Model names and record ids: printable ASCII characters without spaces (e.g. `meetkai:functionary-urdu-mini-pak`). */
export const PRINTABLE_PATTERN = /^[\x21-\x7E]+$/;
export const MODEL_MAX_LENGTH = 200;

export { ID_PATTERN } from '../common/ids';

/** External user ids: the X-On-Behalf-Of rule (1-150 printable ASCII characters, not `*`). */
export const USER_ID_PATTERN = ON_BEHALF_OF_PATTERN;
export const USER_ID_MAX_LENGTH = 150;
export const USER_ID_PATTERN_MESSAGE = 'must be printable ASCII characters, and not "*"';

/** An end-user id field (records, the check, reservations, user budget paths): the X-On-Behalf-Of rule. */
export function EndUserIdField(options: { description: string; optional?: boolean; nullable?: boolean }) {
  return StringField({
    example: 'user_123',
    maxLength: USER_ID_MAX_LENGTH,
    pattern: USER_ID_PATTERN,
    patternMessage: USER_ID_PATTERN_MESSAGE,
    ...options,
  });
}

export const PROJECT_ID_MAX_LENGTH = 128;
export const SERVICE_TIER_MAX_LENGTH = 64;
export const RECORD_ID_MAX_LENGTH = 200;

/** 2000-01-01T00:00:00Z: records claiming to be older are refused. */
export const EARLIEST_RECORD_TIME = 946684800;
/** Records may be stamped at most this far ahead of the server's clock (clock skew). */
export const MAX_FUTURE_SKEW_SECONDS = 86400;
/** 3000-01-01T00:00:00Z: the largest time a query or price accepts. */
export const LATEST_QUERY_TIME = 32503680000;
