import { ForbiddenException } from '@nestjs/common';
import { actionAllowed } from './action-policy';
import type { Actor } from './actor';

/**
 * Refuses (403 naming them) the actions of `actions` the request's key may not submit. Open
 * mode (no actor) may submit any. The consumer checks again before running each task.
 */
export function assertMaySubmit(actor: Actor | undefined, actions: readonly string[]): void {
  if (!actor) return;
  const refused = [...new Set(actions.filter((action) => !actionAllowed(actor.actions, action)))];
  if (refused.length === 0) return;
  throw new ForbiddenException(
    `API key "${actor.keyName}" may not submit action ${refused.map((a) => `"${a}"`).join(', ')}`,
  );
}
