export * from './driver-unavailable.error';
export * from './invalid-consumer-options.error';
export * from './non-retryable.error';
export * from './stale-delivery.error';
export * from './unknown-queue.error';
