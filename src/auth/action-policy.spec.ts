import { actionAllowed, checkActionPattern } from './action-policy';
import { missingScopes } from './scopes';

describe('action policy', () => {
  it('matches actions against a key’s glob patterns', () => {
    const patterns = ['uppercase', 'report.*', '{sum,avg}'];
    expect(actionAllowed(patterns, 'uppercase')).toBe(true);
    expect(actionAllowed(patterns, 'report.daily')).toBe(true);
    expect(actionAllowed(patterns, 'sum')).toBe(true);
    expect(actionAllowed(patterns, 'avg')).toBe(true);
    expect(actionAllowed(patterns, 'upper')).toBe(false);
    expect(actionAllowed(patterns, 'uppercase2')).toBe(false);
    expect(actionAllowed(patterns, 'report')).toBe(false);
    expect(actionAllowed(patterns, 'sleep')).toBe(false);
  });

  it('lets `*` match every action, dots included, and an empty list match none', () => {
    expect(actionAllowed(['*'], 'anything')).toBe(true);
    expect(actionAllowed(['*'], '.hidden')).toBe(true);
    expect(actionAllowed(['*'], 'a.b-c')).toBe(true);
    expect(actionAllowed([], 'anything')).toBe(false);
  });

  it('compiles a pattern list once and keeps answering from it', () => {
    const patterns = ['a*'];
    expect(actionAllowed(patterns, 'ab')).toBe(true);
    expect(actionAllowed(patterns, 'ba')).toBe(false);
    expect(actionAllowed(['b*'], 'ba')).toBe(true);
  });

  it('names a bad pattern', () => {
    expect(checkActionPattern('report.*')).toBeUndefined();
    expect(checkActionPattern(' ')).toMatch(/not an action pattern/);
    expect(checkActionPattern('x'.repeat(201))).toMatch(/not an action pattern/);
  });
});

describe('scopes', () => {
  it('names the scopes a key lacks; admin implies all', () => {
    expect(missingScopes(['tasks:read'], ['tasks:write'])).toEqual(['tasks:write']);
    expect(missingScopes(['tasks:read', 'tasks:write'], ['tasks:write'])).toEqual([]);
    expect(missingScopes(['admin'], ['queues:admin'])).toEqual([]);
    expect(missingScopes(['queues:admin'], ['admin'])).toEqual(['admin']);
  });
});
