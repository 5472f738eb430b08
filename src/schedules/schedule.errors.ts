/** A schedule request that cannot be accepted; `messages` name the fields. */
export class InvalidScheduleError extends Error {
  override readonly name = 'InvalidScheduleError';
  constructor(readonly messages: string[]) {
    super(messages.join('; '));
  }
}

export class ScheduleExistsError extends Error {
  override readonly name = 'ScheduleExistsError';
  constructor(readonly scheduleName: string) {
    super(`a schedule named "${scheduleName}" already exists`);
  }
}

export class ScheduleNotFoundError extends Error {
  override readonly name = 'ScheduleNotFoundError';
  constructor(readonly scheduleName: string) {
    super(`no schedule named "${scheduleName}"`);
  }
}

/** Pause, resume or trigger on a schedule whose state does not allow it. */
export class ScheduleStateError extends Error {
  override readonly name = 'ScheduleStateError';
  constructor(scheduleName: string, state: string, wanted: string) {
    super(`schedule "${scheduleName}" is ${state} and cannot be ${wanted}`);
  }
}
