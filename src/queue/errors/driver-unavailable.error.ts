/** The broker behind a driver cannot be reached (closed, connection lost, file unwritable). */
export class DriverUnavailableError extends Error {
  override readonly name = 'DriverUnavailableError';
  constructor(
    readonly driver: string,
    reason: string,
  ) {
    super(`queue driver ${driver} is unavailable: ${reason}`);
  }
}
