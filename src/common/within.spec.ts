import { TimeoutError, within } from './within';

describe(within.name, () => {
  it('passes a settled value or error through', async () => {
    await expect(within(Promise.resolve(1), 1000, 'x')).resolves.toBe(1);
    await expect(within(Promise.reject(new Error('no')), 1000, 'x')).rejects.toThrow('no');
  });

  it('rejects with TimeoutError naming what did not answer', async () => {
    jest.useFakeTimers();
    try {
      const pending = within(new Promise(() => undefined), 50, 'redis ping');
      jest.advanceTimersByTime(50);
      await expect(pending).rejects.toThrow(new TimeoutError('redis ping: no answer within 50 ms'));
    } finally {
      jest.useRealTimers();
    }
  });
});
