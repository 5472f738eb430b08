import { InvalidConsumerOptionsError } from './errors/invalid-consumer-options.error';
import { validateConsumerOptions } from './queue-consumer.service';

describe(validateConsumerOptions.name, () => {
  const valid = { concurrency: 1, prefetch: 10, maxAttempts: 3, backoff: { baseMs: 1, maxMs: 1 } };

  it('accepts the bounds 1..1000 and 1..10000', () => {
    expect(() =>
      validateConsumerOptions('q', { ...valid, concurrency: 1000, prefetch: 10000 }),
    ).not.toThrow();
  });

  it.each([
    [{ concurrency: 0 }, 'consumer of q: concurrency must be an integer from 1 to 1000, got 0'],
    [
      { concurrency: 1001 },
      'consumer of q: concurrency must be an integer from 1 to 1000, got 1001',
    ],
    [{ prefetch: 10001 }, 'consumer of q: prefetch must be an integer from 1 to 10000, got 10001'],
    [{ prefetch: 1.5 }, 'consumer of q: prefetch must be an integer from 1 to 10000, got 1.5'],
  ])('rejects %j', (override, message) => {
    expect(() => validateConsumerOptions('q', { ...valid, ...override })).toThrow(
      new InvalidConsumerOptionsError(message),
    );
  });
});
