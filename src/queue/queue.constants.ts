/** Injection token of the default driver (the one the first declared queue uses unless told otherwise). */
export const QUEUE_DRIVER = Symbol('taskq:queue_driver');
