/**
 * Polls `probe` until it returns something truthy and returns that. The deadline is generous and
 * only stops a test that would otherwise hang: nothing here asserts how fast anything is.
 */
export async function waitFor<T>(probe: () => T | Promise<T>, what: string, deadlineMs = 20_000): Promise<NonNullable<T>> {
  const giveUpAt = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > giveUpAt) throw new Error(`Gave up waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
