/**
 * Whether an error thrown inside a group-commit transaction means the whole transaction can't
 * be trusted. A constraint (or a logic error) fails one write alone: SQLite undid that statement
 * (or the savepoint around it). Any other SQLite error (I/O, disk full, busy, lock lost) must
 * roll the whole batch back.
 */
export function failsWholeSqliteBatch(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    typeof code === 'string' && code.startsWith('SQLITE_') && !code.startsWith('SQLITE_CONSTRAINT')
  );
}
