import { PacedRead } from './paced-read';

describe('PacedRead', () => {
  let clock = 0;
  let cpu = 0;
  const clocks = { now: () => clock, cost: () => cpu };
  /** A read that uses `ms` of CPU and answers how many reads there were. */
  const costing = (ms: number) => {
    let reads = 0;
    return () => {
      cpu += ms;
      clock += ms;
      return (reads += 1);
    };
  };

  it('reads every time while reads are cheap, so answers stay exact', async () => {
    const paced = new PacedRead(costing(1), clocks);
    expect(await paced.get('q')).toBe(1);
    expect(await paced.get('q')).toBe(2);
  });

  it('reuses a slow read for factor times its cost, then reads again', async () => {
    const paced = new PacedRead(costing(100), { ...clocks, slowMs: 20, factor: 10 });
    clock = 1000;
    expect(await paced.get('q')).toBe(1); // read from 1000 to 1100
    clock = 2099;
    expect(await paced.get('q')).toBe(1); // reused until 1100 + 100 * 10
    clock = 2100;
    expect(await paced.get('q')).toBe(2);
    expect(await paced.get('other')).toBe(3); // per key
  });

  it('does not take a read the machine merely delayed (wall time, no CPU) for a slow one', async () => {
    let reads = 0;
    const paced = new PacedRead(() => {
      clock += 500; // descheduled: half a second passes, no CPU spent
      return (reads += 1);
    }, clocks);
    await paced.get('q');
    expect(await paced.get('q')).toBe(2);
  });

  it('reads again at once after forget', async () => {
    const paced = new PacedRead(costing(100), clocks);
    await paced.get('q');
    paced.forget('q');
    expect(await paced.get('q')).toBe(2);
  });

  it('shares one read among concurrent callers, and does not keep a failed one', async () => {
    let reads = 0;
    let fail = true;
    const paced = new PacedRead(async () => {
      reads += 1;
      await Promise.resolve();
      if (fail) throw new Error('down');
      return reads;
    });
    const both = [paced.get('q'), paced.get('q')];
    await expect(Promise.all(both)).rejects.toThrow('down');
    expect(reads).toBe(1);
    fail = false;
    expect(await paced.get('q')).toBe(2);
  });
});
