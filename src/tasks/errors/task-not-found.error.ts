export class TaskNotFoundError extends Error {
  override readonly name = 'TaskNotFoundError';
  constructor(readonly id: string) {
    super(`task ${id} not found`);
  }
}
