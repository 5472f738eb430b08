/** A handler the explorer cannot use (e.g. on a request-scoped provider); raised at boot. */
export class InvalidTaskHandlerError extends Error {
  override readonly name = 'InvalidTaskHandlerError';
}
