import { createHash } from 'node:crypto';
import { API_KEY_PATTERN } from '../config/app-config';
import { randomBase62 } from '../common/ids';

/** A new API key secret: `mk-` and 40 random base62 characters (about 238 bits). */
export function newApiKeySecret(): string {
  return `mk-${randomBase62(40)}`;
}

export function looksLikeApiKey(secret: string): boolean {
  return secret.length <= 200 && API_KEY_PATTERN.test(secret);
}

/** Secrets are long and random, so one SHA-256 is the right hash (no salt or slow KDF needed). */
export function hashApiKeySecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}
