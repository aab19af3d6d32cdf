/** Blocks this process's event loop (which an in-process test app shares), as a major GC or a long synchronous task would. */
export function pauseThisProcess(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy: no timer fires and no socket is read meanwhile
  }
}
