/** No handler (and no fallback) exists for the action. */
export class UnknownActionError extends Error {
  override readonly name = 'UnknownActionError';
  constructor(
    readonly action: string,
    readonly known: string[],
  ) {
    super(`unknown action "${action}"; known actions: ${known.join(', ') || '(none)'}`);
  }
}
