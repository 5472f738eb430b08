import picomatch from 'picomatch';

/** Compiled matchers, one per key's pattern list (the key set hands out the same arrays). */
const compiled = new WeakMap<readonly string[], (action: string) => boolean>();

/**
 * Whether `action` matches one of a key's glob patterns (picomatch: `*`, `report.*`,
 * `{uppercase,sum}`). Action names hold no slashes, so `*` matches every action.
 */
export function actionAllowed(patterns: readonly string[], action: string): boolean {
  let match = compiled.get(patterns);
  if (!match) {
    match = patterns.length === 0 ? () => false : picomatch([...patterns], { dot: true });
    compiled.set(patterns, match);
  }
  return match(action);
}

/** A pattern picomatch accepts, or the reason it does not. */
export function checkActionPattern(pattern: string): string | undefined {
  if (pattern.trim() === '' || pattern.length > 200) return `"${pattern}" is not an action pattern`;
  try {
    picomatch.makeRe(pattern);
    return undefined;
  } catch (error) {
    return `"${pattern}" is not an action pattern: ${(error as Error).message}`;
  }
}
