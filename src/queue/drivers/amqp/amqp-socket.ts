import type { ChannelModel } from 'amqplib';
import type { Writable } from 'node:stream';

/**
 * Makes the frames amqplib writes in one burst leave as one writev. amqplib writes every frame
 * (a publish, an ack) to the socket on its own; on loopback each write completed at once and was
 * a syscall, a quarter of the driver's busy CPU in a publish-heavy profile. The socket is corked
 * at the first write of a burst and uncorked on the next tick, after amqplib's write loop.
 *
 * The socket is amqplib's internal `connection.stream`; if a later amqplib hides it, this does
 * nothing and frames go out one by one, as amqplib sends them itself.
 */
export function coalesceWrites(model: ChannelModel): void {
  const stream = (model as unknown as { connection?: { stream?: unknown } }).connection?.stream;
  if (!isCorkable(stream)) return;
  const write: Writable['write'] = stream.write.bind(stream);
  let corked = false;
  const uncork = (): void => {
    corked = false;
    stream.uncork();
  };
  stream.write = ((...args: Parameters<Writable['write']>) => {
    if (!corked) {
      corked = true;
      stream.cork();
      process.nextTick(uncork);
    }
    return write(...args);
  }) as Writable['write'];
}

function isCorkable(stream: unknown): stream is Writable {
  return (
    typeof stream === 'object' &&
    stream !== null &&
    typeof (stream as Writable).write === 'function' &&
    typeof (stream as Writable).cork === 'function' &&
    typeof (stream as Writable).uncork === 'function'
  );
}
