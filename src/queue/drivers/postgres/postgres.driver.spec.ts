import { DriverUnavailableError } from '../../errors/driver-unavailable.error';
import type { QueueTable } from '../../interfaces/queue-table.interface';
import { postgresDriver } from './postgres.definition';
import { PostgresQueueDriver } from './postgres.driver';

describe('postgres queue driver (without a database)', () => {
  it('refuses to start without the task table, saying it needs PostgreSQL', async () => {
    const driver = new PostgresQueueDriver();
    await expect(driver.connect()).rejects.toThrow(DriverUnavailableError);
    await expect(driver.connect()).rejects.toThrow(/DATABASE_URL to a PostgreSQL database/);
    expect(() => driver.consume('q', () => undefined, { prefetch: 1 })).toThrow(
      DriverUnavailableError,
    );
  });

  it('takes no SQLite task table: the boot stops, saying it needs PostgreSQL', async () => {
    const driver = new PostgresQueueDriver();
    driver.bindTable({ dialect: 'sqlite' } as QueueTable);
    await expect(driver.connect()).rejects.toThrow(/DATABASE_URL to a PostgreSQL database/);
  });

  it('says what it is: durable, leased, exact deduplication, its rows are the messages', () => {
    expect(new PostgresQueueDriver().capabilities).toEqual({
      durable: true,
      leases: true,
      deduplication: 'exact',
      rowBacked: true,
    });
  });

  it('opens its listener with the first consume, not at connect (a publishing process needs none)', async () => {
    const unlisten = jest.fn(() => Promise.resolve());
    const listen = jest.fn(() => Promise.resolve(unlisten));
    const table = {
      dialect: 'postgres',
      ping: () => Promise.resolve(),
      heartbeat: () => Promise.resolve(),
      forgetOwners: () => Promise.resolve(),
      claim: () => Promise.resolve([]),
      listen,
    } as unknown as QueueTable;
    const driver = new PostgresQueueDriver({ pollMs: 60_000 });
    driver.bindTable(table);
    await driver.connect();
    await driver.publish('q', []);
    expect(listen).not.toHaveBeenCalled();
    driver.consume('q', () => undefined, { prefetch: 1 });
    driver.consume('r', () => undefined, { prefetch: 1 });
    expect(listen).toHaveBeenCalledTimes(1);
    await driver.close();
    expect(unlisten).toHaveBeenCalledTimes(1);
  });

  describe('topology options', () => {
    const fail = (key: string, message: string): never => {
      throw new Error(`${key}: ${message}`);
    };
    const validate = (options: Record<string, unknown>) =>
      postgresDriver.validateOptions!(options, fail);

    it('accepts its options', () => {
      const options = { leaseMs: 5000, heartbeatMs: 500, maxStalls: 3, pollMs: 200, listen: false };
      expect(validate(options)).toEqual(options);
    });

    it.each([
      [{ pollMs: 0 }, 'pollMs: expected an integer of at least 10'],
      [{ leaseMs: 10 }, 'leaseMs: expected an integer of at least 1000'],
      [{ maxStalls: 1.5 }, 'maxStalls: expected an integer of at least 1'],
      [{ listen: 'no' }, 'listen: expected true or false'],
    ])('refuses %j by name', (options, message) => {
      expect(() => validate(options)).toThrow(message);
    });
  });
});
