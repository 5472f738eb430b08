/** A stored entry's `d` field, or undefined when it is not what this driver writes. */
export function parseData(
  text: string | undefined,
): { body: unknown; headers?: Record<string, string> } | undefined {
  if (text === undefined) return undefined;
  try {
    const data = JSON.parse(text) as unknown;
    if (data && typeof data === 'object' && 'body' in data) {
      return data;
    }
  } catch {
    // Not JSON: left to the caller, which keeps it as it is.
  }
  return undefined;
}
