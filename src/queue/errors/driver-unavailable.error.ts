/** The broker behind a driver cannot be reached (closed, connection lost, file unwritable). */
export class DriverUnavailableError extends Error {
  override readonly name = 'DriverUnavailableError';
  constructor(
    readonly driver: string,
    reason: string,
    /** The underlying error, so a caller can tell a full disk from a lost connection. */
    cause?: unknown,
  ) {
    super(`queue driver ${driver} is unavailable: ${reason}`, { cause });
  }
}
