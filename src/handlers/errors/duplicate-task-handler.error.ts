/** Two handlers claim one action; raised at boot naming both. */
export class DuplicateTaskHandlerError extends Error {
  override readonly name = 'DuplicateTaskHandlerError';
  constructor(action: string, first: string, second: string) {
    super(`action "${action}" has two handlers: ${first} and ${second}`);
  }
}
