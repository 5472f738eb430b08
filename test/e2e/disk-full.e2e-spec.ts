import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import request from 'supertest';
import { E2E_QUEUE_DRIVER, tempDir } from '../helpers/create-test-app';
import { distFile, startNode } from '../helpers/child-process';
import { describeWithTmpfs, mountTmpfs, unmount } from '../helpers/tmpfs';
import { waitFor } from '../helpers/wait-for';

const MiB = 1024 * 1024;
/**
 * Each task carries this much data (stored twice: the task row and its message), so a 3 MiB file
 * system fills in a few hundred tasks.
 */
const PAD = 'x'.repeat(5_000);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describeWithTmpfs(
  `a full disk under the SQLite file (${E2E_QUEUE_DRIVER} driver, 3 MiB tmpfs)`,
  () => {
    const dir = tempDir();
    const mounts: string[] = [];
    const children: ChildProcess[] = [];

    afterAll(async () => {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGKILL');
            }),
        ),
      );
      for (const mount of mounts) unmount(mount);
      dir.remove();
    });

    it.each(['express', 'fastify'])(
      '%s: 503 with Retry-After while full, one log line per interval, 202 again once space returns, every 202 stored and completed',
      async (adapter) => {
        const mount = join(dir.path, adapter);
        mkdirSync(mount);
        mountTmpfs(mount, 3 * 1024);
        mounts.push(mount);
        // Space to give back later, as an operator deleting old logs would.
        const ballast = join(mount, 'ballast');
        writeFileSync(ballast, Buffer.alloc(MiB));

        const port = await freePort();
        const child = startNode(distFile('main.js'), {
          DATABASE_PATH: join(mount, 'tasks.db'),
          DATABASE_URL: '',
          QUEUE_DRIVER: E2E_QUEUE_DRIVER,
          HTTP_ADAPTER: adapter,
          PORT: String(port),
          HOST: '127.0.0.1',
          // A task whose outcome could not be written runs again soon once space is back.
          QUEUE_LEASE_MS: '1000',
          RECONCILE_INTERVAL_MS: '500',
          RECONCILE_AFTER_MS: '1000',
          LOG_LEVEL: 'warn',
          NO_COLOR: '1',
        });
        children.push(child);
        try {
          const http = request(`http://127.0.0.1:${port}`);
          await waitFor(
            () =>
              http.get('/health').then(
                (r) => r.status === 200,
                () => false,
              ),
            {
              timeoutMs: 30_000,
              intervalMs: 100,
              what: 'the service to start',
            },
          );

          const accepted: string[] = [];
          const post = async (data: Record<string, unknown>) => {
            const res = await http.post('/tasks').send({ action: 'fill', data });
            if (res.status === 202) accepted.push(res.body.id);
            return res;
          };

          // Fill the file system until the database refuses.
          const fullSince = Date.now();
          let refused: request.Response | undefined;
          for (let i = 0; i < 2000 && !refused; i++) {
            const res = await post({ pad: PAD });
            if (res.status !== 202) refused = res;
          }
          expect(refused?.status).toBe(503);
          expect(refused!.headers['retry-after']).toMatch(/^\d+$/);
          expect(refused!.body).toEqual({
            statusCode: 503,
            error: 'Service Unavailable',
            message: expect.stringMatching(/^disk full: /),
          });
          expect(accepted.length).toBeGreaterThan(10);

          // Keep asking while full: every answer is a 503 or a stored 202, never a 500.
          let refusals = 1;
          for (let i = 0; i < 150; i++) {
            const res = await post({ pad: PAD });
            expect([202, 503]).toContain(res.status);
            if (res.status === 503) refusals += 1;
          }
          expect(refusals).toBeGreaterThan(100);
          const fullForS = (Date.now() - fullSince) / 1000;

          // Space comes back: writes resume without a restart.
          rmSync(ballast);
          await waitFor(async () => (await post({ small: true })).status === 202, {
            timeoutMs: 30_000,
            intervalMs: 200,
            what: 'POST /tasks to answer 202 after space was freed',
          });

          // And they keep going: 20 more tasks fit in the MiB given back, for a client that
          // retries its 503s (the WAL may need a moment to be checkpointed).
          for (let i = 0; i < 20; i++) {
            await waitFor(async () => (await post({ n: i })).status === 202, {
              timeoutMs: 10_000,
              intervalMs: 100,
              what: `task ${i + 1} of 20 after the recovery to be accepted`,
            });
          }

          // Every task answered 202 is stored and completes, on its first attempt: a claim the
          // full disk refused was no failed attempt (the handler never fails).
          for (const id of accepted) {
            await waitFor(
              async () => {
                const res = await http.get(`/tasks/${id}`);
                expect(res.status).toBe(200);
                if (res.body.status !== 'completed') return false;
                expect(res.body.attempt).toBe(1);
                return true;
              },
              { timeoutMs: 30_000, intervalMs: 50, what: `task ${id} to complete` },
            );
          }

          child.kill('SIGTERM');
          await new Promise((resolve) => child.once('exit', resolve));
          const log = child.output();
          // One line when the fault starts, then one counted line per 10 s interval at most (the
          // counting itself: src/common/repeat-log.spec.ts), against a line and a stack per request.
          const lines = log.split('\n').filter((line) => line.startsWith('{'));
          const storageLines = lines.filter(
            (line) => line.includes('"context":"Storage"') && line.includes('"msg":"disk full'),
          );
          expect(storageLines.length).toBeGreaterThanOrEqual(1);
          expect(storageLines.length).toBeLessThanOrEqual(2 + Math.ceil(fullForS / 10) + 3);
          // The old answer logged a stack per refused request; nor may the request log.
          expect(log).not.toContain('ExceptionsHandler');
          expect(lines.filter((line) => line.includes('"statusCode":503'))).toEqual([]);
        } catch (error) {
          // What the service said is what explains a failure here.
          const files = readdirSync(mount).map((f) => `${f} ${statSync(join(mount, f)).size}`);
          const { bavail, bsize } = statfsSync(mount);
          (error as Error).message +=
            `\n--- ${mount}: ${files.join(', ')}; ${bavail * bsize} bytes free` +
            `\n--- service log (tail) ---\n${child.output().slice(-6000)}`;
          throw error;
        }
      },
      120_000,
    );
  },
);
