/** A settle call whose delivery is no longer ours (settled already, or its lease was taken over). */
export class StaleDeliveryError extends Error {
  override readonly name = 'StaleDeliveryError';
  constructor(
    readonly queue: string,
    readonly messageId: string,
  ) {
    super(`delivery of message ${messageId} on queue ${queue} is no longer current`);
  }
}
