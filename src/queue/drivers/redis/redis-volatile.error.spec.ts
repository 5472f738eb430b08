import { RedisVolatileError, volatility } from './redis-volatile.error';

describe(volatility.name, () => {
  it('accepts AOF synced at least as often as required', () => {
    expect(volatility({ aof: true, appendfsync: 'everysec' }, 'everysec')).toBeUndefined();
    expect(volatility({ aof: true, appendfsync: 'always' }, 'everysec')).toBeUndefined();
    // INFO alone (CONFIG disabled) says AOF is on, not how often it syncs: accepted.
    expect(volatility({ aof: true }, 'always')).toBeUndefined();
  });

  it('names what is missing or too weak', () => {
    expect(volatility({ aof: false, appendfsync: 'always' }, 'no')).toBe(
      'runs without an append-only file (appendonly no)',
    );
    expect(volatility({ aof: true, appendfsync: 'no' }, 'everysec')).toBe(
      'syncs its append-only file with appendfsync no, weaker than the required everysec',
    );
    expect(volatility({ aof: true, appendfsync: 'everysec' }, 'always')).toMatch(/weaker/);
  });

  it('says what a crash loses and how to accept it', () => {
    const { message } = new RedisVolatileError('runs without an append-only file (appendonly no)');
    expect(message).toMatch(/waiting, delayed and in-flight message, the dead letters/);
    expect(message).toMatch(/REDIS_ALLOW_VOLATILE=true/);
  });
});
