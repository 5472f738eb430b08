import { DriverUnavailableError } from '../../errors/driver-unavailable.error';
import type { QueueTable } from '../../interfaces/queue-table.interface';
import { sqliteDriver } from './sqlite.definition';
import { SqliteTableQueueDriver } from './sqlite.driver';

describe('sqlite queue driver (without a task table)', () => {
  it('refuses to start without the SQLite task table, naming the alternative', async () => {
    const driver = sqliteDriver.create({}, { error: () => undefined });
    expect(driver).toBeInstanceOf(SqliteTableQueueDriver);
    await expect(driver.connect()).rejects.toThrow(DriverUnavailableError);
    await expect(driver.connect()).rejects.toThrow(
      /needs the SQLite task store.*use the postgres driver.*or redis or amqp/,
    );
  });

  it('takes no PostgreSQL task table (DATABASE_URL set): the boot stops, saying why', async () => {
    const driver = new SqliteTableQueueDriver();
    driver.bindTable({ dialect: 'postgres' } as QueueTable);
    await expect(driver.connect()).rejects.toThrow(/needs the SQLite task store/);
  });

  it('is a table driver: durable, leased, exact deduplication, its rows are the messages', () => {
    expect(new SqliteTableQueueDriver().capabilities).toEqual({
      durable: true,
      leases: true,
      deduplication: 'exact',
      rowBacked: true,
    });
  });

  it('checks the options the postgres driver takes, by name', () => {
    const fail = (key: string, message: string): never => {
      throw new Error(`${key}: ${message}`);
    };
    expect(sqliteDriver.validateOptions!({ pollMs: 200, listen: false }, fail)).toEqual({
      pollMs: 200,
      listen: false,
    });
    expect(() => sqliteDriver.validateOptions!({ path: 1, pollMs: 5 }, fail)).toThrow(
      'pollMs: expected an integer of at least 10',
    );
  });
});
