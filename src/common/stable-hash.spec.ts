import { stableHash } from './stable-hash';

describe(stableHash.name, () => {
  it('ignores key order at every depth', () => {
    expect(stableHash({ a: 1, b: { c: [1, { d: 2, e: 3 }] } })).toBe(
      stableHash({ b: { c: [1, { e: 3, d: 2 }] }, a: 1 }),
    );
  });

  it('tells different values and array orders apart', () => {
    expect(stableHash({ a: 1 })).not.toBe(stableHash({ a: 2 }));
    expect(stableHash([1, 2])).not.toBe(stableHash([2, 1]));
  });
});
