/** More tasks are waiting than QUEUE_MAX_DEPTH allows; the client should retry later. */
export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';
  constructor(
    readonly depth: number,
    readonly limit: number,
  ) {
    super(`${depth} tasks are waiting, the limit is ${limit}: retry later`);
  }
}
