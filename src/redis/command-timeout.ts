import type { Cluster, Command, Redis } from 'ioredis';

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

/**
 * Fails each command that gets no answer within `ms` with ioredis' "Command timed out" error, as
 * ioredis' `commandTimeout` option does, but through {@link lateTimer}: a pause of this process is
 * not a hung Redis. (ioredis' own timer failed every command in flight after such a pause, and
 * `guardRedis` then refused all calls for a second.) Covers commands, scripts and pipelines, which
 * all go through `sendCommand`.
 */
export function timeOutCommands<C extends Redis | Cluster>(client: C, ms: number): C {
  const send = client.sendCommand.bind(client) as (command: Command, ...rest: unknown[]) => unknown;
  const sendWithTimeout = (command: Command, ...rest: unknown[]): unknown => {
    const result = send(command, ...rest);
    if (!command.isResolved) {
      const timer = lateTimer(ms, () => command.reject(new Error('Command timed out')));
      command.promise.then(timer.cancel, timer.cancel);
    }
    return result;
  };
  client.sendCommand = sendWithTimeout as C['sendCommand'];
  return client;
}
