/**
 * Hostile-client proof: thousands of malformed and hostile requests against the real service.
 *
 * Starts the built service (`node dist/main.js`) on a free loopback port with a temporary
 * database, on each HTTP adapter, and sends it requests made from a seeded generator: broken
 * JSON, wrong types and ranges, unknown fields, prototype keys, deep nesting, huge strings and
 * bodies, hostile URLs, queries, paths, methods and headers. Alongside, `/health` is probed
 * every 50 ms. It then checks:
 *
 *   - no answer is 5xx and no connection is dropped without an answer;
 *   - no request that is invalid by construction is accepted (2xx);
 *   - the valid control requests mixed in are accepted;
 *   - `/health` stayed within --max-latency-ms (p99) during the run, and afterwards a new task
 *     is accepted and completes.
 *
 *   npm run fuzz                                   # 5000 requests on each adapter
 *   npm run fuzz -- --count 500                    # CI
 *   npm run fuzz -- --adapter fastify --seed 7 --concurrency 32
 *   npm run fuzz -- --url http://127.0.0.1:8080    # a service that is already running
 *
 * With API keys on, give the service its keys as usual (the child inherits the environment)
 * and the fuzzer one key (scopes tasks:read and tasks:write at least) in FUZZ_API_KEY: it is
 * sent as `Authorization: Bearer <key>`, and requests with no key or a wrong key are then
 * expected to be refused. RATE_LIMIT defaults to 0 for the child (one client on purpose); set
 * it to fuzz with the limiter on (429 is a refusal).
 *
 * Exit 0: every check held. 1: a check failed (the failures are listed with their requests).
 * 2: a harness error (the service would not start, ...).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freePort, intArg, mapLimit, parseArgs, quantile, sleep } from './lib/util';

const ROOT = resolve(__dirname, '..');
const MAIN = join(ROOT, 'dist', 'main.js');

/** What a case must get: refused (4xx), accepted (2xx), or anything but a server error. */
type Expect = 'reject' | 'accept' | 'any';

interface Case {
  kind: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  expect: Expect;
  /** Leave out the API key (or send a wrong one) when FUZZ_API_KEY is set. */
  auth?: 'none' | 'wrong';
}

interface Outcome {
  status: number;
  error?: string;
  ms: number;
}

const args = parseArgs(process.argv.slice(2), {
  count: 'string',
  seed: 'string',
  concurrency: 'string',
  adapter: 'string',
  url: 'string',
  'max-latency-ms': 'string',
});
const COUNT = intArg(args, 'count', 5000, 1);
const SEED = intArg(args, 'seed', 1);
const CONCURRENCY = intArg(args, 'concurrency', 16, 1);
const MAX_LATENCY_MS = intArg(args, 'max-latency-ms', 1000, 1);
const ADAPTERS = args.adapter ? [String(args.adapter)] : ['express', 'fastify'];
const API_KEY = process.env.FUZZ_API_KEY;

/** mulberry32: small, seeded, good enough to pick cases reproducibly. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cases drawn from `random`; each kind states whether it is invalid by construction. */
function generator(random: () => number): () => Case {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const int = (max: number) => Math.floor(random() * max);
  const json = (value: unknown) => JSON.stringify(value);
  const post = (path: string, body: string | Buffer, expect: Expect, kind: string): Case => ({
    kind,
    method: 'POST',
    path,
    headers: { 'Content-Type': 'application/json' },
    body,
    expect,
  });

  const hostileStrings = [
    '',
    ' ',
    '\u0000',
    '\ud800',
    '\u202e\u0041',
    '<script>alert(1)</script>',
    "'; DROP TABLE tasks; --",
    '../../../../etc/passwd',
    '%00%0d%0a',
    '${jndi:ldap://x}',
    '{{7*7}}',
    'a'.repeat(5000),
  ];
  const hostileValues: unknown[] = [
    null,
    true,
    -1,
    0,
    1.5,
    1e308,
    -1e308,
    2 ** 53 + 1,
    [],
    {},
    [[[[]]]],
    ...hostileStrings,
  ];
  const nested = (depth: number, array: boolean): string =>
    array ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
  const validTask = (): Record<string, unknown> =>
    pick([
      () => ({ action: 'uppercase', data: { text: pick(hostileStrings.slice(0, 11)) } }),
      () => ({ action: 'sum', data: { numbers: [1, 2.5, -3] } }),
      () => ({ action: 'fuzz-any', data: { any: pick(hostileValues) } }),
    ])();
  /** A field of a task set to something its DTO refuses. */
  const invalidField = (): [string, unknown] =>
    pick<[string, unknown]>([
      ['action', pick([null, 1, [], {}, '', ' x', 'a'.repeat(200), 'bad action!', '../x'])],
      // null is not here: an optional field given as null counts as left out.
      ['priority', pick([-1, 11, 1.5, '5', 1e308, []])],
      ['maxAttempts', pick([0, 101, -5, '3', 2.5, {}])],
      ['timeoutMs', pick([0, -1, 1e15, 'x', true])],
      ['delayMs', pick([-1, 1e15, '10', 0.5])],
      ['runAt', pick(['not a date', '2030-13-45T99:99:99Z', 12, '', '2030-01-01T25:00:00Z'])],
      [
        'callbackUrl',
        pick([
          'javascript:alert(1)',
          'file:///etc/passwd',
          'http://169.254.169.254/latest/meta-data/',
          'http://100.100.100.200/',
          'http://[64:ff9b::a9fe:a9fe]/',
          'http://[::ffff:0:a9fe:a9fe]/',
          'http://[2002:a9fe:a9fe::]/',
          'http://metadata.google.internal/',
          'gopher://x',
          'not a url',
          `http://x/${'a'.repeat(3000)}`,
          42,
        ]),
      ],
      ['data', pick([[], 'text', 5, true])],
      [pick(['unknown', '__proto__x', 'constructor', 'status', 'id', 'result']), 1],
    ]);

  const kinds: [number, () => Case][] = [
    // Valid controls: these must be accepted.
    [4, () => post('/tasks', json(validTask()), 'accept', 'valid task')],
    [
      1,
      () =>
        post('/tasks/batch', json({ tasks: [validTask(), validTask()] }), 'accept', 'valid batch'),
    ],
    [2, () => ({ kind: 'valid list', method: 'GET', path: '/tasks?limit=3', expect: 'accept' })],
    // Broken JSON and bodies that are not a task.
    [
      6,
      () =>
        post(
          pick(['/tasks', '/tasks/batch', '/schedules']),
          pick([
            '{',
            '{"action":',
            '{"action":"x"',
            '{"action":"x"}}',
            '{"action":NaN}',
            "{'action':'x'}",
            '{"action":"x",}',
            Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
            'null',
            '[]',
            '"x"',
            '42',
            'true',
            '[{"action":"x"}]',
          ]),
          'reject',
          'malformed body',
        ),
    ],
    // A task with one field wrong.
    [
      12,
      () => {
        const task = validTask();
        const [field, value] = invalidField();
        return post('/tasks', json({ ...task, [field]: value }), 'reject', `bad ${field}`);
      },
    ],
    [
      2,
      () =>
        post(
          '/tasks',
          json({ ...validTask(), delayMs: 10, runAt: '2030-01-01T00:00:00Z' }),
          'reject',
          'delayMs and runAt',
        ),
    ],
    [
      3,
      () =>
        post(
          '/tasks',
          json(
            pick([
              { action: 'uppercase', data: { text: pick([1, true, [], {}, 1.5]) } },
              { action: 'sum', data: { numbers: pick([['x'], 'x', [null], [{}], 5]) } },
            ]),
          ),
          'reject',
          'handler data of the wrong type',
        ),
    ],
    // A byte-order mark: JSON parsers may skip it (RFC 8259), so either answer is right.
    [1, () => post('/tasks', '\ufeff{"action":"x"}', 'any', 'byte-order mark')],
    // Prototype keys: free-form data may carry them, but nothing may be polluted.
    [
      3,
      () =>
        post(
          '/tasks',
          pick([
            '{"action":"fuzz-any","data":{"__proto__":{"polluted":"yes"}}}',
            '{"action":"fuzz-any","data":{"constructor":{"prototype":{"polluted":"yes"}}}}',
            '{"__proto__":{"polluted":"yes"},"action":"fuzz-any"}',
            '{"action":"fuzz-any","__proto__":{"status":"completed"}}',
          ]),
          'any',
          'prototype keys',
        ),
    ],
    // Deep nesting and many keys in free-form data: an answer, never a server error.
    [
      3,
      () =>
        post(
          pick(['/tasks', '/tasks/batch']),
          `{"action":"fuzz-any","data":{"x":${nested(pick([40, 500, 3000, 20000]), random() < 0.5)}}}`,
          'any',
          'deep nesting',
        ),
    ],
    [
      1,
      () => {
        const keys = pick([1000, 20000]);
        const data = `{${Array.from({ length: keys }, (_, i) => `"k${i}":${i}`).join(',')}}`;
        return post('/tasks', `{"action":"fuzz-any","data":${data}}`, 'any', 'many keys');
      },
    ],
    [
      1,
      () =>
        post(
          '/tasks',
          `{"action":"fuzz-any","data":{"s":"${'x'.repeat(1024 * 1024 + 10)}"}}`,
          'reject',
          'body over 1 MiB',
        ),
    ],
    // Batches that are not right.
    [
      4,
      () =>
        post(
          '/tasks/batch',
          pick([
            json({ tasks: null }),
            json({ tasks: [] }),
            json({ tasks: [null] }),
            json({ tasks: [[]] }),
            json({ tasks: {} }),
            json({ tasks: 'x' }),
            json({ tasks: [validTask(), { ...validTask(), priority: 99 }] }),
            json({ tasks: Array.from({ length: 1001 }, () => ({ action: 'x' })) }),
            json({ tasks: [validTask()], extra: 1 }),
          ]),
          'reject',
          'bad batch',
        ),
    ],
    // Wrong content types.
    [
      3,
      () => ({
        kind: 'content type',
        method: 'POST',
        path: '/tasks',
        headers: {
          'Content-Type': pick([
            'text/plain',
            'application/x-www-form-urlencoded',
            'multipart/form-data; boundary=x',
            'application/xml',
          ]),
        },
        body: pick(['action=x', json(validTask()), '<a/>']),
        expect: 'reject',
      }),
    ],
    // Headers.
    [
      2,
      () => ({
        ...post('/tasks', json(validTask()), 'reject', 'bad Idempotency-Key'),
        headers: {
          'Content-Type': 'application/json',
          'Idempotency-Key': pick(['x'.repeat(300), 'with space', '\u00e9t\u00e9']),
        },
      }),
    ],
    // Queries of GET /tasks.
    [
      6,
      () => ({
        kind: 'bad list query',
        method: 'GET',
        path: `/tasks?${pick([
          'limit=0',
          'limit=-1',
          'limit=101',
          'limit=abc',
          'limit=1e3',
          'limit[]=1',
          'status=bogus',
          'status=queued&status=failed',
          'createdAfter=yesterday',
          'createdBefore=2030-99-99',
          `cursor=${'A'.repeat(300)}`,
          'cursor=bm90IGEgY3Vyc29y',
          'unknown=1',
          '__proto__[polluted]=yes',
          'action=%00',
        ])}`,
        expect: 'reject',
      }),
    ],
    [
      2,
      () => ({
        kind: 'odd list query',
        method: 'GET',
        path: `/tasks?limit=${1 + int(100)}&status=${pick(['queued', 'completed', 'failed'])}&createdAfter=2020-01-01T00:00:00Z&cursor=${Buffer.from(json([Date.now(), 'z'])).toString('base64url')}`,
        expect: 'accept',
      }),
    ],
    // Paths, ids and methods.
    [
      6,
      () => ({
        kind: 'odd path',
        method: pick(['GET', 'POST']),
        path: `${pick(['/tasks/', '/tasks/x/', '/schedules/', '/queues/'])}${pick([
          encodeURIComponent(pick(hostileStrings.filter((x) => x !== '\ud800'))),
          '%00',
          '..%2f..%2fetc%2fpasswd',
          '%E0%A4%A',
          '%',
          'x'.repeat(8000),
          '00000000-0000-0000-0000-000000000000',
        ])}${pick(['', '/cancel', '/retry', '/pause', '/trigger'])}`,
        expect: 'reject',
      }),
    ],
    [
      2,
      () => ({
        kind: 'wrong method',
        method: pick(['PUT', 'DELETE', 'PATCH']),
        path: pick(['/tasks', '/tasks/batch', '/tasks/events', '/health']),
        headers: { 'Content-Type': 'application/json' },
        body: '{}',
        expect: 'reject',
      }),
    ],
    [
      2,
      () => ({
        kind: 'bad wait',
        method: 'GET',
        path: `/tasks/00000000-0000-0000-0000-000000000000?waitMs=${pick(['-1', '30001', 'x', '1e9'])}`,
        expect: 'reject',
      }),
    ],
    [
      2,
      () => ({
        kind: 'bad event filter',
        method: 'GET',
        path: `/tasks/events?${pick(['taskId=' + 'x'.repeat(100), 'action=%20bad', 'colour=red'])}`,
        expect: 'reject',
      }),
    ],
    // Schedules with bad definitions.
    [
      3,
      () =>
        post(
          '/schedules',
          json({
            name: pick(['fuzz', 'bad name!', '', 'x'.repeat(200)]),
            action: 'fuzz-any',
            ...pick([
              { cron: 'not a cron' },
              { cron: '* * * * * * *' },
              { every: '0s' },
              { every: '1ms' },
              { cron: '* * * * *', every: '1m' },
              { cron: '* * * * *', timezone: 'Mars/Olympus' },
              {},
            ]),
          }),
          'reject',
          'bad schedule',
        ),
    ],
  ];
  if (API_KEY) {
    kinds.push([
      3,
      () => ({
        ...post('/tasks', json(validTask()), 'reject', 'no or wrong API key'),
        auth: pick(['none', 'wrong'] as const),
      }),
    ]);
  }
  const total = kinds.reduce((sum, [weight]) => sum + weight, 0);
  return () => {
    let roll = random() * total;
    for (const [weight, make] of kinds) {
      roll -= weight;
      if (roll < 0) return make();
    }
    return kinds[0][1]();
  };
}

function send(base: string, agent: Agent, c: Case): Promise<Outcome> {
  const started = performance.now();
  return new Promise((done) => {
    const headers: Record<string, string> = { ...c.headers };
    if (API_KEY && c.auth !== 'none') {
      headers.Authorization = `Bearer ${c.auth === 'wrong' ? `${API_KEY}x` : API_KEY}`;
    }
    if (c.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(c.body));
    let req: ReturnType<typeof request>;
    try {
      req = request(`${base}${c.path}`, { method: c.method, headers, agent });
    } catch (error) {
      // The client itself refuses some header values; nothing reached the server.
      done({ status: 0, error: `client refused: ${(error as Error).message}`, ms: 0 });
      return;
    }
    req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
    req.on('response', (res) => {
      // A stream that opened (a valid filter) is not read to its end.
      if (res.headers['content-type']?.startsWith('text/event-stream')) {
        done({ status: res.statusCode ?? 0, ms: performance.now() - started });
        req.destroy();
        return;
      }
      res.resume();
      res.on('end', () => done({ status: res.statusCode ?? 0, ms: performance.now() - started }));
      res.on('error', (error) =>
        done({ status: res.statusCode ?? 0, error: error.message, ms: 0 }),
      );
    });
    req.on('error', (error) => done({ status: 0, error: error.message, ms: 0 }));
    req.end(c.body);
  });
}

/** Whether `outcome` breaks what `c` must get; undefined when it is fine. */
function violation(c: Case, outcome: Outcome): string | undefined {
  const { status } = outcome;
  if (outcome.error?.startsWith('client refused')) return undefined;
  // A body over the limit may be refused before it is read whole: the reset is the refusal.
  if (status === 0 && c.kind === 'body over 1 MiB') return undefined;
  if (status === 0) return `no answer: ${outcome.error}`;
  if (status >= 500) return `server error ${status}`;
  if (c.expect === 'reject' && status < 400) return `accepted (${status}) although invalid`;
  if (c.expect === 'accept' && (status < 200 || status >= 300))
    return `refused (${status}) although valid`;
  return undefined;
}

interface Report {
  adapter: string;
  sent: number;
  byStatus: Record<string, number>;
  failures: { c: Case; why: string }[];
  health: { p50: number; p99: number; max: number; failed: number };
  after: string | undefined;
}

async function fuzz(base: string, adapter: string): Promise<Report> {
  const next = generator(rng(SEED));
  const cases = Array.from({ length: COUNT }, () => next());
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const byStatus: Record<string, number> = {};
  const failures: Report['failures'] = [];

  const latencies: number[] = [];
  let healthFailed = 0;
  let probing = true;
  const healthAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  const prober = (async () => {
    while (probing) {
      const outcome = await send(base, healthAgent, {
        kind: 'health',
        method: 'GET',
        path: '/health',
        expect: 'accept',
      });
      if (outcome.status === 200) latencies.push(outcome.ms);
      else healthFailed += 1;
      await sleep(50);
    }
  })();

  await mapLimit(cases, CONCURRENCY, async (c) => {
    const outcome = await send(base, agent, c);
    const key = outcome.status === 0 ? 'none' : String(outcome.status);
    byStatus[key] = (byStatus[key] ?? 0) + 1;
    const why = violation(c, outcome);
    if (why) failures.push({ c, why });
  });
  probing = false;
  await prober;

  const after = await stillServing(base, agent);
  agent.destroy();
  healthAgent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    adapter,
    sent: cases.length,
    byStatus,
    failures,
    health: {
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      max: latencies[latencies.length - 1] ?? NaN,
      failed: healthFailed,
    },
    after,
  };
}

/** A new task is accepted and completes; nothing answers with a polluted prototype. */
async function stillServing(base: string, agent: Agent): Promise<string | undefined> {
  const call = async (method: string, path: string, body?: unknown) => {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (API_KEY) headers.Authorization = `Bearer ${API_KEY}`;
    const res = await fetch(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  };
  void agent;
  const created = await call('POST', '/tasks', { action: 'uppercase', data: { text: 'after' } });
  if (created.status !== 202) return `POST /tasks after the fuzz answered ${created.status}`;
  const { id } = JSON.parse(created.text) as { id: string };
  const task = await call('GET', `/tasks/${id}?waitMs=20000`);
  const body = JSON.parse(task.text) as { status?: string; result?: unknown };
  if (body.status !== 'completed')
    return `a task after the fuzz ended ${body.status ?? task.status}`;
  for (const path of ['/health', '/tasks?limit=5', `/tasks/${id}`]) {
    const res = await call('GET', path);
    if (res.text.includes('polluted')) return `GET ${path} shows a polluted prototype`;
  }
  if (({} as Record<string, unknown>).polluted !== undefined)
    return 'the fuzzer itself was polluted';
  return undefined;
}

async function startService(
  adapter: string,
  dir: string,
): Promise<{ base: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    cwd: ROOT,
    env: {
      RATE_LIMIT: '0',
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      HTTP_ADAPTER: adapter,
      DATABASE_PATH: join(dir, `${adapter}.db`),
      LOG_LEVEL: 'error',
      TASK_BACKOFF_MS: '10',
      TASK_BACKOFF_MAX_MS: '50',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`the ${adapter} service exited (${child.exitCode}) while starting`);
    try {
      if ((await fetch(`${base}/health`)).status === 200) return { base, child };
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`the ${adapter} service did not answer /health within 60 s`);
}

function print(report: Report): boolean {
  const statuses = Object.entries(report.byStatus)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([status, n]) => `${status}: ${n}`)
    .join(', ');
  const fivexx = Object.entries(report.byStatus)
    .filter(([status]) => Number(status) >= 500)
    .reduce((sum, [, n]) => sum + n, 0);
  const accepted = report.failures.filter((f) => f.why.startsWith('accepted')).length;
  const slow = !(report.health.p99 <= MAX_LATENCY_MS) || report.health.failed > 0;
  console.log(
    `fuzz ${report.adapter}: ${report.sent} requests (seed ${SEED}); answers ${statuses}`,
  );
  console.log(
    `  5xx answers: ${fivexx}; invalid bodies accepted: ${accepted}; other failures: ${report.failures.length - accepted}`,
  );
  console.log(
    `  /health during the fuzz: p50 ${report.health.p50.toFixed(1)} ms, p99 ${report.health.p99.toFixed(1)} ms, max ${report.health.max.toFixed(1)} ms, failed ${report.health.failed} (limit p99 ${MAX_LATENCY_MS} ms)`,
  );
  console.log(`  afterwards: ${report.after ?? 'a new task was accepted and completed'}`);
  const seen = new Set<string>();
  for (const { c, why } of report.failures) {
    const key = `${c.kind}|${why}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const body = c.body === undefined ? '' : ` ${String(c.body).slice(0, 160)}`;
    console.log(`  FAIL ${why}: [${c.kind}] ${c.method} ${c.path.slice(0, 160)}${body}`);
    if (seen.size >= 25) break;
  }
  return report.failures.length === 0 && !slow && report.after === undefined;
}

async function main(): Promise<number> {
  if (args.url) {
    return print(await fuzz(String(args.url).replace(/\/$/, ''), 'given service')) ? 0 : 1;
  }
  const dir = await mkdtemp(join(tmpdir(), 'taskq-fuzz-'));
  let ok = true;
  try {
    for (const adapter of ADAPTERS) {
      const { base, child } = await startService(adapter, dir);
      try {
        ok = print(await fuzz(base, adapter)) && ok;
      } finally {
        const exited = new Promise((done) => child.once('exit', done));
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(15_000)]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  console.log(ok ? 'fuzz: every check held' : 'fuzz: FAILED');
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('fuzz: harness error:', error);
    process.exit(2);
  },
);
