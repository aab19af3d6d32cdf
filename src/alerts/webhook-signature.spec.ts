import { Webhook } from 'standardwebhooks';
import { sign, signatureHeaders, signingKey } from './webhook-signature';

describe('Standard Webhooks signatures', () => {
  const body = JSON.stringify({ id: 'alrt_1', type: 'budget.threshold.crossed', data: { note: 'é ✓' } });
  const now = Math.floor(Date.now() / 1000);

  it('a whsec_ secret is base64-decoded after the prefix; the standardwebhooks library accepts the signature', () => {
    const secret = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`;
    expect(signingKey(secret).toString()).toBe('0123456789abcdef0123456789abcdef');
    const headers = signatureHeaders(secret, 'alrt_1', now, body);
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
    expect(headers['webhook-signature']).toBe(new Webhook(secret).sign('alrt_1', new Date(now * 1000), body));
  });

  it('any other secret is used as its UTF-8 bytes', () => {
    const secret = 'my-own-sécret';
    const headers = signatureHeaders(secret, 'alrt_2', now, body);
    expect(new Webhook(Buffer.from(secret, 'utf8'), { format: 'raw' }).verify(body, headers)).toEqual(JSON.parse(body));
  });

  it('changes with the body, the timestamp and the id', () => {
    const secret = 'whsec_c2VjcmV0';
    const base = sign(secret, 'a', 1, '{}');
    expect(sign(secret, 'a', 1, '{} ')).not.toBe(base);
    expect(sign(secret, 'a', 2, '{}')).not.toBe(base);
    expect(sign(secret, 'b', 1, '{}')).not.toBe(base);
    expect(base).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
  });
});
