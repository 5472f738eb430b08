/** Why a JSON value is out of bounds, or undefined when it is within them. */
export type JsonBoundsProblem = 'depth' | 'keys';

/**
 * Checks a parsed JSON value's nesting depth (an object or array is one level) and its object
 * keys counted at every level, without recursion: a body nested 10,000 deep must give a 400,
 * not a stack overflow. Stops at the first bound passed; linear in the value's size.
 */
export function checkJsonBounds(
  value: unknown,
  maxDepth: number,
  maxKeys = Infinity,
): JsonBoundsProblem | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const stack: [object, number][] = [[value, 1]];
  let keys = 0;
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (depth > maxDepth) return 'depth';
    if (Array.isArray(node)) {
      for (const item of node) {
        if (typeof item === 'object' && item !== null) stack.push([item as object, depth + 1]);
      }
      continue;
    }
    const values = Object.values(node);
    keys += values.length;
    if (keys > maxKeys) return 'keys';
    for (const item of values) {
      if (typeof item === 'object' && item !== null) stack.push([item as object, depth + 1]);
    }
  }
  return undefined;
}
