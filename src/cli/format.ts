/** Rows as aligned text columns; numbers right-aligned, everything else left. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  const numeric = header.map(
    (_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'),
  );
  return cells
    .map((row) =>
      row
        .map((cell, i) => (numeric[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** One line of `taskq tail`: time, task, action, status and progress. */
export function eventLine(event: {
  type: string;
  taskId: string;
  action: string;
  status: string;
  progress?: number | null;
  progressMessage?: string | null;
  at: number;
}): string {
  const what =
    event.type === 'progress'
      ? `progress ${event.progress ?? 0}%${event.progressMessage ? ` ${event.progressMessage}` : ''}`
      : event.status;
  return `${new Date(event.at).toISOString()}  ${event.taskId}  ${event.action}  ${what}`;
}

/** A JSON-lines text as entries: a body per non-blank line, or why the line is unreadable. */
export function parseJsonLines(
  text: string,
): { line: number; body?: Record<string, unknown>; problem?: string }[] {
  const entries: { line: number; body?: Record<string, unknown>; problem?: string }[] = [];
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    if (raw.trim() === '') continue;
    const line = index + 1;
    try {
      const body: unknown = JSON.parse(raw);
      if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        entries.push({ line, problem: 'not a JSON object' });
      } else entries.push({ line, body: body as Record<string, unknown> });
    } catch (error) {
      entries.push({ line, problem: `not JSON (${(error as Error).message})` });
    }
  }
  return entries;
}
