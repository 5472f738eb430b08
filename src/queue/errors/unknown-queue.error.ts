/** A queue name that no configured queue declares. */
export class UnknownQueueError extends Error {
  override readonly name = 'UnknownQueueError';
  constructor(
    readonly queue: string,
    known: string[],
  ) {
    super(`queue ${queue} is not declared; declared queues: ${known.join(', ') || '(none)'}`);
  }
}
