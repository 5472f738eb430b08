/** The scopes an API key may hold. `admin` implies every other. */
export const SCOPES = [
  'tasks:write',
  'tasks:read',
  'tasks:cancel',
  'queues:admin',
  'admin',
] as const;
export type Scope = (typeof SCOPES)[number];

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** The scopes of `needed` that `held` lacks (none when it holds `admin`). */
export function missingScopes(held: readonly string[], needed: readonly Scope[]): Scope[] {
  if (held.includes('admin')) return [];
  return needed.filter((scope) => !held.includes(scope));
}
