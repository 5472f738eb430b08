/** pino's numeric levels, as the words and colours a terminal shows. */
const LEVELS: Record<number, [string, string]> = {
  10: ['TRACE', '90'],
  20: ['DEBUG', '36'],
  30: ['INFO ', '32'],
  40: ['WARN ', '33'],
  50: ['ERROR', '31'],
  60: ['FATAL', '35'],
};
/** Fields every line has, shown in the line's head instead of after it. */
const HEAD = new Set(['level', 'time', 'msg', 'context', 'pid', 'hostname']);

/**
 * One JSON log line as a terminal line: `12:00:01.123 INFO  [Context] message key=value …`.
 * Written here because pino-pretty is not a dependency; production logs stay JSON.
 */
export function prettyLine(line: string, colour: boolean): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const [word, code] = LEVELS[entry.level as number] ?? ['?    ', '0'];
  const time = new Date(entry.time as number).toISOString().slice(11, 23);
  const paint = (text: string, c: string): string => (colour ? `\x1b[${c}m${text}\x1b[0m` : text);
  const context = entry.context
    ? `${paint(`[${typeof entry.context === 'string' ? entry.context : ''}]`, '33')} `
    : '';
  const rest = Object.entries(entry)
    .filter(([key]) => !HEAD.has(key))
    .map(([key, value]) => {
      if (key === 'err' && value && typeof value === 'object') {
        const stack = (value as { stack?: string }).stack;
        if (stack) return `\n${stack}`;
      }
      return `${paint(key, '90')}=${typeof value === 'string' ? value : JSON.stringify(value)}`;
    })
    .join(' ');
  return `${paint(time, '90')} ${paint(word, code)} ${context}${typeof entry.msg === 'string' ? entry.msg : ''}${rest ? ` ${rest}` : ''}\n`;
}
