import type { QueueDriver, Settle } from './interfaces/queue-driver.interface';
import type { Delivery } from './interfaces/queue-message.interface';

/** Ends a delivery the way `settle` says, through the driver's own call for it. */
export function settleBy(driver: QueueDriver, delivery: Delivery, settle: Settle): Promise<void> {
  if (settle.kind === 'ack') return driver.ack(delivery);
  if (settle.kind === 'nack') return driver.nack(delivery, { delayMs: settle.delayMs });
  return driver.deadLetter(delivery, settle.reason);
}
