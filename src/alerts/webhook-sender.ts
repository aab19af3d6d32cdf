import { request as httpRequest, IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import { lateTimer } from '../common/late-timer';
import { assertPublicTarget, UnsafeWebhookTarget } from '../common/ssrf';

/** How an attempt ended; also the `outcome` label of the delivery-attempt metric. */
export type SendOutcome = 'success' | 'http_error' | 'gone' | 'redirect' | 'timeout' | 'network_error' | 'refused_target';

export interface SendResult {
  outcome: SendOutcome;
  statusCode: number | null;
  /** Why it failed, for the delivery log (no URL, no headers, no secret). */
  error: string | null;
  latencyMs: number;
}

export interface SendOptions {
  /** Total time for resolving, connecting, sending and receiving the response head. */
  timeoutMs: number;
  allowPrivateTargets: boolean;
  userAgent?: string;
}

const ERROR_TEXT_MAX = 500;

/** Always answers with the one address that passed the SSRF check: no second resolution to race. */
function pinnedLookup(address: string): LookupFunction {
  const family = isIP(address);
  return ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  }) as unknown as LookupFunction;
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const text = e?.code && !String(e.message).includes(e.code) ? `${e.code}: ${e.message}` : String(e?.message ?? err);
  return text.slice(0, ERROR_TEXT_MAX);
}

/**
 * POSTs `body` to `url` once: resolves the host and refuses private targets (unless allowed),
 * connects to exactly the checked address (Host header and TLS name stay the URL's), never
 * follows redirects, and gives up after `timeoutMs` in total. Never throws: the result says
 * how it went.
 */
export async function sendWebhook(url: URL, body: string, headers: Record<string, string>, options: SendOptions): Promise<SendResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  let timer: { cancel(): void } | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = lateTimer(options.timeoutMs, () => resolve('timeout'));
  });
  const timeout = (): SendResult => ({ outcome: 'timeout', statusCode: null, error: `timed out after ${options.timeoutMs} ms`, latencyMs: elapsed() });
  try {
    let addresses: string[];
    try {
      const resolved = await Promise.race([assertPublicTarget(url, options.allowPrivateTargets), deadline]);
      if (resolved === 'timeout') return timeout();
      addresses = resolved;
    } catch (err) {
      if (err instanceof UnsafeWebhookTarget) {
        return { outcome: 'refused_target', statusCode: null, error: `refused target: ${err.message}`.slice(0, ERROR_TEXT_MAX), latencyMs: elapsed() };
      }
      throw err;
    }
    const payload = Buffer.from(body, 'utf8');
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send({
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port || undefined,
      path: `${url.pathname}${url.search}`,
      method: 'POST',
      agent: false,
      lookup: pinnedLookup(addresses[0]),
      headers: {
        'content-type': 'application/json',
        'content-length': String(payload.length),
        'user-agent': options.userAgent ?? 'Tally-Webhooks/1',
        ...headers,
      },
    });
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
    });
    req.end(payload);
    try {
      const res = await Promise.race([response, deadline]);
      if (res === 'timeout') {
        req.destroy();
        return timeout();
      }
      res.resume(); // the body is not needed; let it drain, or cut it off
      res.once('error', () => undefined);
      setTimeout(() => req.destroy(), 1000).unref();
      const status = res.statusCode ?? 0;
      const latencyMs = elapsed();
      if (status >= 200 && status < 300) return { outcome: 'success', statusCode: status, error: null, latencyMs };
      if (status === 410) return { outcome: 'gone', statusCode: status, error: 'HTTP 410 Gone: webhook disabled until the budget is set again', latencyMs };
      if (status >= 300 && status < 400) return { outcome: 'redirect', statusCode: status, error: `HTTP ${status}: redirects are not followed`, latencyMs };
      return { outcome: 'http_error', statusCode: status, error: `HTTP ${status}`, latencyMs };
    } catch (err) {
      req.destroy();
      return { outcome: 'network_error', statusCode: null, error: describe(err), latencyMs: elapsed() };
    }
  } finally {
    timer?.cancel();
  }
}
