import { DatabaseUnavailableError, storageFault } from './storage-errors';

const coded = (code: string, message = code) => Object.assign(new Error(message), { code });

describe(storageFault.name, () => {
  it.each([
    ['SQLITE_FULL', 'disk full'],
    ['ENOSPC', 'disk full'],
    ['53100', 'disk full'],
    ['SQLITE_IOERR_WRITE', 'database unavailable'],
    ['SQLITE_READONLY_DBMOVED', 'database unavailable'],
    ['SQLITE_CANTOPEN', 'database unavailable'],
    ['SQLITE_NOTADB', 'database unavailable'],
    ['SQLITE_CORRUPT', 'database unavailable'],
    ['ECONNREFUSED', 'database unavailable'],
    ['57P01', 'database unavailable'],
    ['08006', 'database unavailable'],
    ['53300', 'database unavailable'],
  ])('names %s as %s', (code, fault) => {
    expect(storageFault(coded(code))).toBe(fault);
  });

  it.each(['SQLITE_CONSTRAINT_UNIQUE', '23505', '22P02', 'SQLITE_ERROR', 'ERR_INVALID_ARG_TYPE'])(
    'leaves %s to its own answer',
    (code) => {
      expect(storageFault(coded(code))).toBeUndefined();
    },
  );

  it('looks through driverError and cause', () => {
    const typeorm = Object.assign(new Error('query failed'), {
      driverError: coded('SQLITE_FULL'),
    });
    expect(storageFault(typeorm)).toBe('disk full');
    const wrapped = new Error('queue driver sqlite is unavailable', { cause: coded('53100') });
    expect(storageFault(wrapped)).toBe('disk full');
  });

  it("leaves a queue driver's socket errors to the broker: only SQLite's codes name the database there", () => {
    const driverError = (cause: unknown) =>
      Object.assign(new Error('queue driver x is unavailable', { cause }), {
        name: 'DriverUnavailableError',
      });
    expect(storageFault(driverError(coded('ECONNREFUSED')))).toBeUndefined();
    expect(storageFault(driverError(coded('SQLITE_FULL')))).toBe('disk full');
  });

  it('knows a lost pg connection by its message and its own error', () => {
    expect(storageFault(new Error('Connection terminated unexpectedly'))).toBe(
      'database unavailable',
    );
    expect(storageFault(new DatabaseUnavailableError('file deleted'))).toBe('database unavailable');
  });

  it('is undefined for non-errors and plain errors', () => {
    expect(storageFault(undefined)).toBeUndefined();
    expect(storageFault('SQLITE_FULL')).toBeUndefined();
    expect(storageFault(new Error('boom'))).toBeUndefined();
  });
});
