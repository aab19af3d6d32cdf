/**
 * Calls `fire` once `ms` have passed and the event loop has read its sockets since.
 *
 * A plain timer runs in the timers phase, before the poll phase reads the sockets. When this process
 * pauses for longer than `ms` (a major GC, a long synchronous task, a starved CPU), such a timer fires
 * although the answer it waits for has sat in the socket for most of the pause. Deferring the verdict
 * to setImmediate (the check phase, after the poll) lets that answer arrive first.
 */
export function lateTimer(ms: number, fire: () => void): { cancel(): void } {
  let immediate: NodeJS.Immediate | undefined;
  const timer = setTimeout(() => {
    immediate = setImmediate(fire);
  }, ms);
  timer.unref();
  return {
    cancel: () => {
      clearTimeout(timer);
      if (immediate) clearImmediate(immediate);
    },
  };
}

/** `promise`, or a rejection with `error()` when it has not settled within `ms` (by {@link lateTimer}). */
export function withLateTimeout<T>(promise: Promise<T>, ms: number, error: () => Error = () => new Error('timeout')): Promise<T> {
  let timer: { cancel(): void } | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = lateTimer(ms, () => reject(error()));
  });
  return Promise.race([promise, timeout]).finally(() => timer?.cancel());
}
