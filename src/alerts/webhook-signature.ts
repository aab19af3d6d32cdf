import { createHmac } from 'node:crypto';

const WHSEC_PREFIX = 'whsec_';

/** The HMAC key of a secret: a `whsec_` secret is base64 after the prefix; any other is its UTF-8 bytes. */
export function signingKey(secret: string): Buffer {
  return secret.startsWith(WHSEC_PREFIX) ? Buffer.from(secret.slice(WHSEC_PREFIX.length), 'base64') : Buffer.from(secret, 'utf8');
}

/** `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), per Standard Webhooks. */
export function sign(secret: string, id: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', signingKey(secret)).update(`${id}.${timestamp}.${body}`, 'utf8').digest('base64');
  return `v1,${mac}`;
}

/**
 * The Standard Webhooks headers of one attempt. During a secret rotation (SPEC §5) `previous` is
 * the old secret: `webhook-signature` then carries both signatures, new first, space-separated.
 */
export function signatureHeaders(secret: string, id: string, timestamp: number, body: string, previous?: string | null): Record<string, string> {
  const signatures = [sign(secret, id, timestamp, body)];
  if (previous) signatures.push(sign(previous, id, timestamp, body));
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signatures.join(' '),
  };
}
