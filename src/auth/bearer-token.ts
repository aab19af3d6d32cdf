import { AppException, ErrorCode } from '../common/errors';

/** The API key of an `Authorization: Bearer <api-key>` header; a 401 when it is missing or malformed. */
export function bearerToken(header: string | undefined): string {
  if (!header) {
    throw AppException.unauthorized(ErrorCode.MissingApiKey, 'Missing API key: send "Authorization: Bearer <api-key>"');
  }
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!match) {
    throw AppException.unauthorized(ErrorCode.InvalidApiKey, 'Malformed Authorization header: expected "Bearer <api-key>"');
  }
  return match[1];
}
