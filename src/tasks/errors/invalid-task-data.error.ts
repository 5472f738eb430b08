/** The task's data does not fit its handler's data type; `messages` name the fields. */
export class InvalidTaskDataError extends Error {
  override readonly name = 'InvalidTaskDataError';
  constructor(readonly messages: string[]) {
    super(messages.join('; '));
  }
}
