/**
 * Rules of the queue module that config also checks the environment against. They live here,
 * not in either module, so that config and queue need not import each other.
 */

/** A queue name: what QUEUE_NAME, topology queues and handlers' `queue` may be. */
export const QUEUE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
export const QUEUE_NAME_RULE = "1-64 letters, digits, '_', '.', ':' or '-'";

/** A consumer runs at most this many handlers at once, and holds at most this many deliveries. */
export const MAX_CONCURRENCY = 1000;
export const MAX_PREFETCH = 10000;
