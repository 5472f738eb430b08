import { ConsumerCredit } from './consumer-credit';

describe(ConsumerCredit.name, () => {
  it('gives room up to prefetch and back as deliveries are settled', () => {
    const credit = new ConsumerCredit({ prefetch: 3 });
    expect([credit.room, credit.hasRoom, credit.unsettled]).toEqual([3, true, 0]);
    credit.take();
    credit.take();
    credit.take();
    expect([credit.room, credit.hasRoom, credit.unsettled]).toEqual([0, false, 3]);
    credit.give();
    expect([credit.room, credit.hasRoom, credit.unsettled]).toEqual([1, true, 2]);
  });

  it('refills on every free slot by default (low water prefetch - 1)', () => {
    const credit = new ConsumerCredit({ prefetch: 4 });
    expect(credit.lowWater).toBe(3);
    for (let i = 0; i < 4; i++) credit.take();
    expect(credit.wantsRefill).toBe(false);
    credit.give();
    expect(credit.wantsRefill).toBe(true);
  });

  it('waits for the low-water mark before asking for a refill', () => {
    const credit = new ConsumerCredit({ prefetch: 10, lowWater: 6 });
    for (let i = 0; i < 10; i++) credit.take();
    for (let i = 0; i < 3; i++) credit.give();
    expect([credit.hasRoom, credit.wantsRefill]).toEqual([true, false]);
    credit.give();
    expect([credit.room, credit.wantsRefill]).toEqual([4, true]);
  });

  it('clamps the low-water hint to 0..prefetch-1', () => {
    expect(new ConsumerCredit({ prefetch: 5, lowWater: 99 }).lowWater).toBe(4);
    expect(new ConsumerCredit({ prefetch: 5, lowWater: -3 }).lowWater).toBe(0);
    expect(new ConsumerCredit({ prefetch: 1 }).lowWater).toBe(0);
  });

  it('has no room while paused, and again once resumed', () => {
    const credit = new ConsumerCredit({ prefetch: 2 });
    credit.pause();
    expect([credit.room, credit.hasRoom, credit.wantsRefill, credit.isPaused]).toEqual([
      0,
      false,
      false,
      true,
    ]);
    credit.resume();
    expect([credit.room, credit.hasRoom, credit.wantsRefill, credit.isPaused]).toEqual([
      2,
      true,
      true,
      false,
    ]);
  });

  it('has no room for good once cancelled, while still counting what it holds', () => {
    const credit = new ConsumerCredit({ prefetch: 2 });
    credit.take();
    credit.cancel();
    credit.resume();
    expect([credit.room, credit.hasRoom, credit.wantsRefill, credit.isCancelled]).toEqual([
      0,
      false,
      false,
      true,
    ]);
    credit.give();
    expect(credit.unsettled).toBe(0);
  });
});
