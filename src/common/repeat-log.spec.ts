import { RepeatLog } from './repeat-log';

describe(RepeatLog.name, () => {
  let now = 0;
  let lines: string[];
  let log: RepeatLog;

  beforeEach(() => {
    jest.useFakeTimers();
    now = 0;
    lines = [];
    log = new RepeatLog(
      (line) => lines.push(line),
      10_000,
      () => now,
    );
  });
  afterEach(() => {
    log.close();
    jest.useRealTimers();
  });

  const advance = (ms: number) => {
    now += ms;
    jest.advanceTimersByTime(ms);
  };

  it('writes the first occurrence at once and the rest of the interval as one counted line', () => {
    for (let i = 0; i < 500; i++) log.report('disk full', 'disk full: /db');
    expect(lines).toEqual(['disk full: /db']);
    advance(10_000);
    expect(lines).toEqual([
      'disk full: /db',
      'disk full: /db (repeated 499 times in the last 10 s)',
    ]);
  });

  it('keeps keys apart', () => {
    log.report('a', 'a');
    log.report('b', 'b');
    log.report('a', 'a');
    advance(10_000);
    expect(lines).toEqual(['a', 'b', 'a (repeated 1 times in the last 10 s)']);
  });

  it('writes an occurrence after a quiet interval at once again', () => {
    log.report('a', 'a');
    advance(30_000);
    log.report('a', 'a');
    expect(lines).toEqual(['a', 'a']);
  });

  it('writes what is still counted when closed, with the latest line', () => {
    log.report('low space', 'low space: 3 MiB free');
    log.report('low space', 'low space: 1 MiB free');
    log.close();
    expect(lines).toEqual(['low space: 3 MiB free', 'low space: 1 MiB free (repeated 1 times)']);
  });
});
