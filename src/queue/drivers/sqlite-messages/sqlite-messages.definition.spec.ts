import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sqliteMessagesDriver } from './sqlite-messages.definition';

describe('sqlite driver definition', () => {
  it('names the file and the settings that chose it when the file cannot be opened', () => {
    const dir = mkdtempSync(join(tmpdir(), 'taskq-sqlite-def-'));
    try {
      // A path under a regular file: its folder can never be created.
      const blocker = join(dir, 'a-file');
      writeFileSync(blocker, '');
      const path = join(blocker, 'queue.db');
      const logger = { error: () => undefined };
      expect(() => sqliteMessagesDriver.create({ path }, logger)).toThrow(
        `sqlite queue driver: file ${path} (its path option: a topology entry's, else QUEUE_SQLITE_PATH, else DATABASE_PATH): `,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
