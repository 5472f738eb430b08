/** A task request that passed DTO validation but cannot be accepted; `messages` name the fields. */
export class InvalidTaskRequestError extends Error {
  override readonly name = 'InvalidTaskRequestError';
  constructor(readonly messages: string[]) {
    super(messages.join('; '));
  }
}
