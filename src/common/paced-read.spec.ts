import { PacedRead } from './paced-read';

describe('PacedRead', () => {
  let clock = 0;
  const now = () => clock;

  it('reads every time while reads are cheap, so answers stay exact', async () => {
    let reads = 0;
    const paced = new PacedRead(() => (reads += 1), 20, 10, now);
    expect(await paced.get('q')).toBe(1);
    expect(await paced.get('q')).toBe(2);
    expect(reads).toBe(2);
  });

  it('reuses a slow read for factor times its duration, then reads again', async () => {
    let reads = 0;
    const paced = new PacedRead(
      () => {
        clock += 100; // the read takes 100 ms
        return (reads += 1);
      },
      20,
      10,
      now,
    );
    clock = 1000;
    expect(await paced.get('q')).toBe(1); // read from 1000 to 1100
    clock = 2099;
    expect(await paced.get('q')).toBe(1); // reused until 1000 + 100 * 11
    clock = 2100;
    expect(await paced.get('q')).toBe(2);
    expect(await paced.get('other')).toBe(3); // per key
  });

  it('reads again at once after forget', async () => {
    let reads = 0;
    const paced = new PacedRead(
      () => {
        clock += 100;
        return (reads += 1);
      },
      20,
      10,
      now,
    );
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
