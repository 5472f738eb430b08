import { loadConfig } from '../config/app.config';
import { buildDataSourceOptions } from './data-source.options';

describe('the SQLite task file connection', () => {
  const pragmasFor = (env: Record<string, string>): string[] => {
    const options = buildDataSourceOptions(loadConfig({ DATABASE_PATH: ':memory:', ...env })) as {
      prepareDatabase?: (db: { pragma(sql: string): unknown }) => void;
    };
    const pragmas: string[] = [];
    options.prepareDatabase?.({ pragma: (sql) => pragmas.push(sql) });
    return pragmas;
  };

  it('keeps 32 MiB of pages and its statement journals in memory, and syncs as configured', () => {
    expect(pragmasFor({})).toEqual([
      'synchronous = NORMAL',
      'busy_timeout = 5000',
      'cache_size = -32768',
      'temp_store = MEMORY',
    ]);
    expect(pragmasFor({ QUEUE_SQLITE_SYNCHRONOUS: 'FULL' })).toContain('synchronous = FULL');
  });
});
