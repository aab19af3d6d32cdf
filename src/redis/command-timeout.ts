import type { Cluster, Command, Redis } from 'ioredis';
import { lateTimer } from '../common/late-timer';

/**
 * Fails each command that gets no answer within `ms` with ioredis' "Command timed out" error, as
 * ioredis' `commandTimeout` option does, but through {@link lateTimer}: a pause of this process is
 * not a hung Redis. (ioredis' own timer failed every command in flight after such a pause, and
 * `guardRedis` then refused all calls for a second.) Covers commands, scripts and pipelines, which
 * all go through `sendCommand`. Without `ms`, the client is left as it is.
 */
export function timeOutCommands<C extends Redis | Cluster>(client: C, ms: number | undefined): C {
  if (ms === undefined) return client;
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
