/** A bad environment value; the message is one line naming the variable and what is allowed. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
