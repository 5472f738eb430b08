import { spawn } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { distFile, ROOT } from '../helpers/child-process';
import { startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { waitFor } from '../helpers/wait-for';

/** The operator CLI (dist/cli/main.js, the package's `taskq` bin) against the real application. */
interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function taskq(
  args: string[],
  options: { url: string; stdin?: string; env?: Record<string, string> },
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [distFile('cli/main.js'), ...args], {
      cwd: ROOT,
      env: { ...process.env, TASKQ_API_KEY: '', TASKQ_URL: options.url, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? '');
  });
}

describe('taskq CLI', () => {
  const dir = tempDir();
  let t: TestApp;
  let url: string;

  beforeAll(async () => {
    t = await startTestApp({ dbPath: join(dir.path, 'tasks.db') });
    await t.app.listen(0, '127.0.0.1');
    url = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await t.close();
    dir.remove();
  });

  const run = (...args: string[]) => taskq(args, { url });
  const statusOf = async (id: string): Promise<string> =>
    (await t.http.get(`/tasks/${id}`).expect(200)).body.status;
  const pause = () => t.http.post('/queues/tasks/pause').expect(200);
  const resume = () => t.http.post('/queues/tasks/resume').expect(200);
  const failed = async (): Promise<string> => {
    const { body } = await t.http
      .post('/tasks')
      .send({ action: 'fail', data: { message: 'broken' }, maxAttempts: 1 })
      .expect(202);
    await waitFor(async () => (await statusOf(body.id)) === 'failed', { what: 'a failed task' });
    return body.id as string;
  };

  it('submits a JSON-lines file and names each rejected line with its reason', async () => {
    const file = join(dir.path, 'tasks.jsonl');
    writeFileSync(
      file,
      [
        '{"action":"uppercase","data":{"text":"a"}}',
        '',
        '{"action":"sum","data":{"numbers":[1,2]}}',
        '{"action":"sum","data":{"numbers":"x"}}',
        'not json',
        '{"action":"uppercase","data":{"text":"b"},"priority":99}',
      ].join('\n'),
    );

    const result = await run('submit', file);

    expect(result.code).toBe(1);
    expect(result.stdout.split('\n')).toEqual([
      'accepted 2, rejected 3',
      expect.stringMatching(/^ {2}line 4: 400 .*data\.numbers/),
      expect.stringMatching(/^ {2}line 5: not JSON \(/),
      expect.stringMatching(/^ {2}line 6: 400 .*priority/),
      '',
    ]);
    const { body } = await t.http.get('/tasks?action=sum').expect(200);
    expect(body.tasks.map((task: { data: unknown }) => task.data)).toEqual([{ numbers: [1, 2] }]);
  });

  it('submits from stdin and reports the created ids as JSON', async () => {
    const lines = Array.from({ length: 25 }, (_, i) =>
      JSON.stringify({ action: 'uppercase', data: { text: `t${i}` } }),
    );

    const result = await taskq(['submit', '--json', '-c', '4'], { url, stdin: lines.join('\n') });

    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout) as {
      accepted: { line: number; id: string }[];
      rejected: unknown[];
    };
    expect(summary.rejected).toEqual([]);
    expect(summary.accepted.map((a) => a.line)).toEqual(lines.map((_, i) => i + 1));
    const { body } = await t.http.get(`/tasks/${summary.accepted[7].id}`).expect(200);
    expect(body.data).toEqual({ text: 't7' });
  });

  it('prints the queues as a table', async () => {
    const result = await run('queues');

    expect(result.code).toBe(0);
    const [header, row] = result.stdout.trim().split('\n');
    expect(header.split(/\s{2,}/)).toEqual([
      'queue',
      'driver',
      'waiting',
      'in flight',
      'delayed',
      'failed',
      'state',
    ]);
    expect(row).toMatch(/^tasks\s+\S+\s+\d+\s+\d+\s+\d+\s+\d+\s+running$/);
  });

  it('tails the event stream until interrupted', async () => {
    const child = spawn(process.execPath, [distFile('cli/main.js'), 'tail', '--json'], {
      cwd: ROOT,
      env: { ...process.env, TASKQ_URL: url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await waitFor(() => stderr.includes('following'), { what: 'tail to connect' });

    const { body } = await t.http
      .post('/tasks')
      .send({ action: 'sleep', data: { ms: 600, steps: 2 } })
      .expect(202);
    const events = () =>
      stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map(
          (line) =>
            JSON.parse(line) as { taskId: string; type: string; status: string; progress?: number },
        )
        .filter((e) => e.taskId === body.id);
    await waitFor(() => events().some((e) => e.status === 'completed'), {
      what: 'the completed event',
    });
    child.kill('SIGINT');

    expect(await exited).toBe(0);
    expect(
      events()
        .filter((e) => e.type === 'status')
        .map((e) => e.status),
    ).toEqual(['queued', 'running', 'completed']);
    expect(
      events()
        .filter((e) => e.type === 'progress')
        .map((e) => e.progress),
    ).toEqual([50, 100]);
  });

  it('retries failed tasks of an action in bulk only after a yes', async () => {
    const ids = [await failed(), await failed()];
    await pause(); // retried tasks then stay queued, where the test can see them
    try {
      const declined = await taskq(['retry', '--status', 'failed', '--action', 'fail'], {
        url,
        stdin: 'n\n',
      });
      expect(declined.stderr).toContain('Retry 2 failed task(s) of action fail? [y/N]');
      expect(declined.stdout).toBe('nothing done\n');
      expect(declined.code).toBe(1);
      expect(await Promise.all(ids.map(statusOf))).toEqual(['failed', 'failed']);

      const confirmed = await taskq(['retry', '--action', 'fail'], { url, stdin: 'y\n' });
      expect(confirmed.stdout).toBe('retried 2, refused 0\n');
      expect(confirmed.code).toBe(0);
      expect(await Promise.all(ids.map(statusOf))).toEqual(['queued', 'queued']);

      const none = await run('retry', '--action', 'fail', '--yes');
      expect(none.stdout).toBe('no failed task(s) of action fail\n');
    } finally {
      await resume();
    }
  });

  it('retries without asking with --yes', async () => {
    // Earlier tests' tasks of this action fail again after their retry: only the new one.
    const after = new Date(Date.now() - 1).toISOString();
    const id = await failed();
    await pause();
    try {
      const result = await run('retry', '--action', 'fail', '--created-after', after, '--yes');
      expect(result.stderr).not.toContain('[y/N]');
      expect(result.stdout).toBe('retried 1, refused 0\n');
      expect(await statusOf(id)).toBe('queued');
    } finally {
      await resume();
    }
  });

  it('cancels tasks by id, and says which it could not', async () => {
    await pause();
    try {
      const created = await Promise.all(
        [1, 2].map(
          async () =>
            (
              await t.http
                .post('/tasks')
                .send({ action: 'sleep', data: { ms: 1 } })
                .expect(202)
            ).body.id as string,
        ),
      );
      const first = await run('cancel', ...created);
      expect(first.stdout).toBe('cancelled 2, refused 0\n');
      expect(await Promise.all(created.map(statusOf))).toEqual(['cancelled', 'cancelled']);

      const again = await run('cancel', created[0]);
      expect(again.code).toBe(1);
      expect(again.stdout).toMatch(new RegExp(`^cancelled 0, refused 1\\n  ${created[0]}: 409 `));
    } finally {
      await resume();
    }
  });

  it('prints health and queue totals', async () => {
    const text = await run('stats');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      new RegExp(
        `^${url}: ok \\(database up, queue up, auth open\\)\\nqueues 1 \\(0 paused\\): waiting \\d+`,
      ),
    );

    const json = await run('stats', '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({
      health: { status: 'ok' },
      queues: 1,
      paused: 0,
    });
  });

  it('sends the API key from --api-key or TASKQ_API_KEY as a bearer token', async () => {
    // A stand-in API that records what it is sent (no key checks exist in the app yet).
    const seen: (string | undefined)[] = [];
    const server = createHttpServer((req, res) => {
      seen.push(req.headers.authorization);
      res.setHeader('Content-Type', 'application/json');
      res.end('{"queues":[]}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const other = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      await taskq(['queues', '--api-key', 'from-flag'], { url: other });
      await taskq(['queues'], { url: other, env: { TASKQ_API_KEY: 'from-env' } });
      await taskq(['queues'], { url: other });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }

    expect(seen).toEqual(['Bearer from-flag', 'Bearer from-env', undefined]);
  });

  it('fails with one line when the API cannot be reached', async () => {
    // A port that was free a moment ago: nothing listens there.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));

    const result = await taskq(['queues'], { url: `http://127.0.0.1:${port}` });

    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`taskq: cannot reach http://127.0.0.1:${port}: ECONNREFUSED\n`);
  });
});
