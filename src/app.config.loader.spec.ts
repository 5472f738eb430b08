import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadAppConfig, removedSettingWarnings } from './app.config.loader';
import { ConfigError } from './config/app.config';
import { DRIVER_KINDS } from './queue/drivers';

/** Writes a topology document to a temporary file and loads the config with it. */
function withTopology(document: unknown, env: Record<string, string> = {}) {
  const path = join(tmpdir(), `taskq-topology-${process.pid}-${Math.random()}.yaml`);
  // References may carry the namespace (`app:broker`), as in Wippy.
  const text =
    typeof document === 'string'
      ? document
      : stringify({ namespace: 'app', ...(document as object) });
  writeFileSync(path, text);
  return { path, load: () => loadAppConfig({ QUEUE_TOPOLOGY: path, ...env }) };
}

const entries = [
  { name: 'broker', kind: 'queue.driver.redis', options: { leaseMs: 5000 } },
  { name: 'local', kind: 'queue.driver.sqlite', options: { pollMs: 500 } },
  { name: 'emails', kind: 'queue.queue', driver: 'app:broker' },
  { name: 'reports', kind: 'queue.queue', driver: 'local' },
  { name: 'email-workers', kind: 'queue.consumer', queue: 'emails', concurrency: 8, prefetch: 16 },
];

describe('queue topology', () => {
  it('builds one driver, queue and consumer from the environment without a file', () => {
    const config = loadAppConfig({ QUEUE_DRIVER: 'redis', REDIS_URL: 'redis://:s3cret@h:6390' });
    expect(config.queue.topology).toEqual({
      source: 'environment',
      drivers: [
        {
          name: 'default',
          kind: 'redis',
          options: { url: 'redis://:s3cret@h:6390', leaseMs: 30_000 },
        },
      ],
      queues: [{ name: 'tasks', driver: 'default' }],
      consumers: [{ name: 'tasks', queue: 'tasks', concurrency: 2, prefetch: 5 }],
      defaultQueue: 'tasks',
    });
  });

  it('reads drivers, queues and consumers from a Wippy-style file', () => {
    const { load } = withTopology({ version: '1.0', namespace: 'app', entries });
    const { queue } = load();
    expect(queue.name).toBe('emails');
    expect(queue.topology.queues).toEqual([
      { name: 'emails', driver: 'broker' },
      { name: 'reports', driver: 'local' },
    ]);
    expect(queue.topology.consumers).toEqual([
      { name: 'email-workers', queue: 'emails', concurrency: 8, prefetch: 16 },
    ]);
    expect(queue.topology.drivers[0]).toEqual({
      name: 'broker',
      kind: 'redis',
      options: { url: 'redis://127.0.0.1:6379', leaseMs: 5000 },
    });
    expect(queue.topology.drivers[1]).toEqual({
      name: 'local',
      kind: 'sqlite',
      options: { pollMs: 500, leaseMs: 30_000 },
    });
  });

  it('loads the example file shipped in examples/', () => {
    const config = loadAppConfig({ QUEUE_TOPOLOGY: join(__dirname, '../examples/topology.yaml') });
    expect(config.queue.topology.queues.map((q) => q.name)).toEqual(['tasks', 'reports']);
  });

  it.each([
    [
      { entries: [{ name: 'x', kind: 'queue.driver.kafka' }] },
      'entry "x".kind: unknown driver kind queue.driver.kafka',
    ],
    [
      { entries: [...entries, { name: 'q', kind: 'queue.queue', driver: 'nope' }] },
      'entry "q".driver: no queue.driver.* entry is named "nope"',
    ],
    [
      {
        entries: [...entries, { name: 'c', kind: 'queue.consumer', queue: 'emails', prefetch: 0 }],
      },
      'entry "c".prefetch: expected an integer from 1 to 10000, got 0',
    ],
    [
      { entries: [...entries, { name: 'c', kind: 'queue.consumer', queue: 'other' }] },
      'entry "c".queue: no queue.queue entry is named "other"',
    ],
    [
      { entries: [{ name: 'r', kind: 'queue.driver.redis', options: { url: 'http://x' } }] },
      'entry "r".options.url: expected a redis:// URL',
    ],
    [
      { entries: [{ name: 'r', kind: 'queue.driver.amqp', options: { vhost: '/' } }] },
      'entry "r".options.vhost: is not an option of queue.driver.amqp',
    ],
    [
      { entries: [{ name: 's', kind: 'queue.driver.sqlite', options: { pollMs: 1 } }] },
      'entry "s".options.pollMs: expected an integer of at least 10',
    ],
    [
      // The message-table driver is gone: its kind is refused, naming the ones there are.
      { entries: [{ name: 's', kind: 'queue.driver.sqlite-messages' }] },
      'entry "s".kind: unknown driver kind queue.driver.sqlite-messages (known: queue.driver.memory, queue.driver.sqlite, queue.driver.redis, queue.driver.amqp, queue.driver.postgres)',
    ],
    [
      { entries: [...entries, { name: 'emails', kind: 'queue.queue', driver: 'local' }] },
      'entry "emails".name: is used by an earlier entry',
    ],
    [{ entries: [{ name: 'q', kind: 'queue.queue' }] }, 'entry "q".driver: expected the name'],
    [{ entries: [{ kind: 'queue.queue' }] }, 'entries[0].name: expected 1-64 letters'],
    [{ entries: [] }, 'entries: expected a non-empty list'],
    ['entries: [', 'is not valid YAML'],
  ])('refuses %j naming the entry and field', (document, message) => {
    const { load } = withTopology(document);
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(message);
  });

  it('refuses QUEUE_NAME that the file does not declare', () => {
    const { load } = withTopology({ entries }, { QUEUE_NAME: 'tasks' });
    expect(load).toThrow('QUEUE_NAME=tasks is invalid');
  });

  it('refuses a memory driver in the file with split roles', () => {
    const { load } = withTopology(
      {
        entries: [
          { name: 'm', kind: 'queue.driver.memory' },
          { name: 'q', kind: 'queue.queue', driver: 'm' },
        ],
      },
      { APP_ROLE: 'worker' },
    );
    expect(load).toThrow('driver "m" is queue.driver.memory, which needs APP_ROLE=all');
  });
});

describe('queue drivers from the environment', () => {
  it('rejects a split role on the in-process memory driver', () => {
    expect(() => loadAppConfig({ QUEUE_DRIVER: 'memory', APP_ROLE: 'api' })).toThrow(
      'APP_ROLE=api is invalid with QUEUE_DRIVER=memory: the memory driver needs APP_ROLE=all',
    );
  });

  it('accepts every registered driver kind and names them all when refusing another', () => {
    for (const kind of DRIVER_KINDS) {
      expect(loadAppConfig({ QUEUE_DRIVER: kind }).queue.topology.drivers[0].kind).toBe(kind);
    }
    expect(() => loadAppConfig({ QUEUE_DRIVER: 'kafka' })).toThrow(
      new ConfigError(`QUEUE_DRIVER=kafka is invalid: expected one of ${DRIVER_KINDS.join(', ')}`),
    );
  });

  it('refuses the removed message-table driver, naming the kinds there are', () => {
    expect(() => loadAppConfig({ QUEUE_DRIVER: 'sqlite-messages' })).toThrow(
      new ConfigError(
        'QUEUE_DRIVER=sqlite-messages is invalid: expected one of memory, sqlite, redis, amqp, postgres',
      ),
    );
  });
});

describe('removed settings', () => {
  it('warns about each one still set, naming it and why, and about nothing else', () => {
    expect(removedSettingWarnings({ QUEUE_SQLITE_SHARDS: '4', QUEUE_DRIVER: 'sqlite' })).toEqual([
      'QUEUE_SQLITE_SHARDS is set but no longer does anything: the sqlite-messages driver it configured was removed (the task table is the queue)',
    ]);
    expect(removedSettingWarnings({})).toEqual([]);
  });
});
