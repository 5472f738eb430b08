import { secretsIn } from './logging';
import { logScrubber, urlSecrets } from './log-scrubber';
import { prettyLine } from './pretty-stream';

describe(logScrubber.name, () => {
  const scrub = logScrubber(['callback-key-123', 'short']);

  it('removes the credentials of any URL in a line', () => {
    expect(scrub('{"msg":"connect amqp://guest:guest@rabbit:5672/ and redis://:pw@h:6379"}')).toBe(
      '{"msg":"connect amqp://***@rabbit:5672/ and redis://***@h:6379"}',
    );
  });

  it('replaces the values of secret-looking query parameters', () => {
    expect(scrub('GET /tasks?limit=5&api_key=abc&accessToken=xyz&x=1')).toBe(
      'GET /tasks?limit=5&api_key=***&accessToken=***&x=1',
    );
  });

  it('replaces the exact secrets it was given, but not very short values', () => {
    expect(scrub('signed with callback-key-123, short')).toBe('signed with ***, short');
  });

  it('leaves URLs without credentials alone', () => {
    expect(scrub('callback to https://example.com/hook failed')).toBe(
      'callback to https://example.com/hook failed',
    );
  });
});

describe(secretsIn.name, () => {
  it('finds secret-named values and the passwords of URLs anywhere in the config', () => {
    const found = secretsIn({
      callback: { secret: 'cb-secret-value', timeoutMs: 1000 },
      databaseUrl: 'postgres://app:db-password@db/x',
      auth: { apiKeys: ['first-api-key', 'second-api-key'] },
      queue: { name: 'tasks', redis: { url: 'redis://127.0.0.1:6379' } },
    });
    expect(found).toEqual(
      expect.arrayContaining(['cb-secret-value', 'db-password', 'first-api-key', 'second-api-key']),
    );
    expect(found).not.toContain('tasks');
    expect(urlSecrets('redis://127.0.0.1:6379')).toEqual([]);
  });
});

describe(prettyLine.name, () => {
  it('shows time, level, context, message and the other fields on one line', () => {
    const line = JSON.stringify({
      level: 40,
      time: Date.UTC(2026, 0, 1, 12, 0, 1, 123),
      pid: 1,
      context: 'TaskProcessor',
      msg: 'slow',
      taskId: 't1',
      attempt: 2,
    });
    expect(prettyLine(line, false)).toBe(
      '12:00:01.123 WARN  [TaskProcessor] slow taskId=t1 attempt=2\n',
    );
  });

  it('passes a line that is not JSON through', () => {
    expect(prettyLine('plain\n', false)).toBe('plain\n');
  });
});
