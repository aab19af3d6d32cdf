/**
 * A webhook URL cut to `scheme://host/…` (SPEC §4 "Who sees webhook URLs"): webhook URLs often
 * carry tokens (Slack-style paths, `?token=`, user info), so callers who may not change the
 * budget see only where alerts go, never the credential.
 */
export function maskUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}/…`;
  } catch {
    return '…';
  }
}
