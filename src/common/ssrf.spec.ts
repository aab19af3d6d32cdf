import { assertPublicTarget, isPrivateAddress } from './ssrf';

describe('webhook SSRF rules', () => {
  it.each([
    '127.0.0.1', '127.1.2.3', '10.0.0.5', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254',
    '0.0.0.0', '100.64.0.1', '::1', '::', 'fe80::1', 'fc00::1', 'fd00:ec2::254', '::ffff:127.0.0.1',
    '::ffff:7f00:1', '::ffff:a9fe:a9fe', '64:ff9b::a9fe:a9fe', '2002:7f00:0001::1', '224.0.0.1', 'not-an-ip',
  ])('refuses %s', (address) => {
    expect(isPrivateAddress(address)).toBe(true);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('allows %s', (address) => {
    expect(isPrivateAddress(address)).toBe(false);
  });

  it('checks names by what they resolve to, and schemes and credentials', async () => {
    await expect(assertPublicTarget(new URL('http://localhost:8080/hook'), false)).rejects.toThrow(/loopback/);
    await expect(assertPublicTarget(new URL('http://[::1]/hook'), false)).rejects.toThrow(/loopback/);
    await expect(assertPublicTarget(new URL('http://169.254.169.254/latest'), false)).rejects.toThrow(/metadata/);
    await expect(assertPublicTarget(new URL('ftp://example.com/'), false)).rejects.toThrow(/http/);
    await expect(assertPublicTarget(new URL('http://u:p@8.8.8.8/'), false)).rejects.toThrow(/credentials/);
    await expect(assertPublicTarget(new URL('http://localhost:8080/hook'), true)).resolves.toContain('127.0.0.1');
    await expect(assertPublicTarget(new URL('http://8.8.8.8/hook'), false)).resolves.toEqual(['8.8.8.8']);
  });
});
