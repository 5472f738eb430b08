import type { OptionFail } from './driver-kind';
import type { TableQueueDriver } from './table-driver';

const INTEGER_OPTIONS = [
  ['leaseMs', 1000],
  ['heartbeatMs', 10],
  ['maxStalls', 1],
  ['pollMs', 10],
] as const;

/** The option keys and checks both table drivers share (postgres, sqlite). */
export const tableDriverOptions = {
  optionKeys: ['leaseMs', 'heartbeatMs', 'maxStalls', 'pollMs', 'listen'] as const,
  envOptions: (env: { leaseMs: number }) => ({ leaseMs: env.leaseMs }),
  validateOptions: (options: Record<string, unknown>, fail: OptionFail) => {
    for (const [key, min] of INTEGER_OPTIONS) {
      const value = options[key];
      if (value !== undefined && (!Number.isInteger(value) || (value as number) < min)) {
        fail(key, `expected an integer of at least ${min}`);
      }
    }
    if (options.listen !== undefined && typeof options.listen !== 'boolean') {
      fail('listen', 'expected true or false');
    }
    return options;
  },
  // Fails the boot by name when no task table of the right database was bound.
  connect: (driver: TableQueueDriver) => driver.connect(),
};
