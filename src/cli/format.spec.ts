import { eventLine, parseJsonLines, table } from './format';

describe('cli format', () => {
  it('aligns columns, numbers to the right', () => {
    expect(
      table(
        ['queue', 'waiting'],
        [
          ['tasks', 5],
          ['reports', 120],
        ],
      ),
    ).toBe('queue    waiting\ntasks          5\nreports      120');
  });

  it('reads JSON lines, skipping blank ones and naming bad ones by line', () => {
    expect(parseJsonLines('{"action":"sum"}\n\n[1]\n{oops\n')).toEqual([
      { line: 1, body: { action: 'sum' } },
      { line: 3, problem: 'not a JSON object' },
      { line: 4, problem: expect.stringMatching(/^not JSON \(/) },
    ]);
  });

  it('prints a status event and a progress event', () => {
    const base = { taskId: 't1', action: 'sleep', status: 'running', at: Date.UTC(2026, 0, 1) };
    expect(eventLine({ ...base, type: 'status' })).toBe(
      '2026-01-01T00:00:00.000Z  t1  sleep  running',
    );
    expect(eventLine({ ...base, type: 'progress', progress: 50, progressMessage: 'half' })).toBe(
      '2026-01-01T00:00:00.000Z  t1  sleep  progress 50% half',
    );
  });
});
