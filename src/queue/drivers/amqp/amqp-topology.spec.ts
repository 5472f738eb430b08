import { delayBucket } from './amqp-topology';

describe(delayBucket.name, () => {
  it('rounds delays up to a few shared buckets, never down', () => {
    expect([1, 10, 99, 100, 101, 1000, 1234, 2500, 6000, 86_400_000].map(delayBucket)).toEqual([
      10, 10, 100, 100, 150, 1000, 1500, 3000, 7000, 100_000_000,
    ]);
  });
});
