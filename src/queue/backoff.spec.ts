import { backoffDelay } from './backoff';

describe(backoffDelay.name, () => {
  const options = { baseMs: 100, maxMs: 1000 };

  it.each([
    [1, 0, 50],
    [1, 0.999999, 100],
    [2, 0, 100],
    [3, 0.5, 300],
    [10, 0, 500],
    [10, 0.999999, 1000],
  ])('attempt %i with random %f waits %i ms', (attempt, random, expected) => {
    expect(backoffDelay(attempt, options, () => random)).toBe(expected);
  });

  it('stays within [half, full] of the capped exponential delay', () => {
    for (let attempt = 1; attempt < 20; attempt++) {
      const full = Math.min(1000, 100 * 2 ** (attempt - 1));
      const delay = backoffDelay(attempt, options);
      expect(delay).toBeGreaterThanOrEqual(Math.floor(full / 2));
      expect(delay).toBeLessThanOrEqual(full);
    }
  });
});
