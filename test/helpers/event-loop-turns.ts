/**
 * Runs `work` and counts the turns the event loop took meanwhile (a setImmediate chain): work that
 * holds the loop in one piece lets none through, work that yields lets one through per yield.
 */
export async function countingTurns<T>(work: () => Promise<T>): Promise<{ result: T; turns: number }> {
  let turns = 0;
  let done = false;
  const tick = (): void => {
    if (done) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  try {
    return { result: await work(), turns };
  } finally {
    done = true;
  }
}
