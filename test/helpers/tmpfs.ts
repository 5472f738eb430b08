import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Mounts a tmpfs of `sizeKiB` at `dir` (which must exist); throws with mount's message. */
export function mountTmpfs(dir: string, sizeKiB: number, readOnly = false): void {
  const options = `size=${sizeKiB}k${readOnly ? ',ro' : ''}`;
  const result = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], {
    encoding: 'utf8',
  });
  if (result.status !== 0) {
    throw new Error(`mount -t tmpfs at ${dir} failed: ${result.stderr || result.error?.message}`);
  }
}

/** Unmounts `dir`; lazily if something still holds it, so a failed test never leaves a mount. */
export function unmount(dir: string): void {
  if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
}

/** Whether this process may mount a tmpfs (root, and a kernel and container that allow it). */
function canMountTmpfs(): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'taskq-mount-probe-'));
  try {
    mountTmpfs(dir, 64);
    unmount(dir);
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `describe` for a suite that mounts small file systems of its own (to fill one, or make one
 * read-only). Skipped with a message where mounting is not permitted, except under CI=true,
 * where that is a failure: CI must prove these faults.
 */
export function describeWithTmpfs(title: string, suite: () => void): void {
  if (canMountTmpfs()) {
    describe(title, suite);
    return;
  }
  if (process.env.CI === 'true') {
    describe(title, () => {
      it('needs to mount a tmpfs', () => {
        throw new Error('mount -t tmpfs is not permitted, and CI=true makes that a failure');
      });
    });
    return;
  }
  console.warn(
    `skipping "${title}": mount -t tmpfs is not permitted here (run as root, or set CI=true to fail instead)`,
  );
  describe.skip(title, suite);
}
