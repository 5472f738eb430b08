import { checkJsonBounds } from './json-bounds';

describe(checkJsonBounds.name, () => {
  it('counts an object or array as one level', () => {
    expect(checkJsonBounds({ a: [1, { b: 2 }] }, 3)).toBeUndefined();
    expect(checkJsonBounds({ a: [1, { b: {} }] }, 3)).toBe('depth');
    expect(checkJsonBounds('text', 0)).toBeUndefined();
  });

  it('finds depth far beyond what recursion could walk', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(checkJsonBounds(deep, 32)).toBe('depth');
  });

  it('counts object keys at every level, not array items', () => {
    expect(checkJsonBounds({ a: { b: 1, c: 2 }, d: [1, 2, 3, 4] }, 10, 4)).toBeUndefined();
    expect(checkJsonBounds({ a: { b: 1, c: 2 }, d: [{ e: 1 }, 2] }, 10, 4)).toBe('keys');
  });
});
