/** Consumer options outside their bounds; raised at boot, never at run time. */
export class InvalidConsumerOptionsError extends Error {
  override readonly name = 'InvalidConsumerOptionsError';
}
