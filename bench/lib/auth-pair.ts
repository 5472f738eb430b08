import autocannon from 'autocannon';
import type { ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { actionAllowed } from '../../src/auth/action-policy';
import { generateKey, hashKey, presentedKey, sameHash } from '../../src/auth/api-key';
import { buildKeySet } from '../../src/auth/api-key.store';
import { missingScopes } from '../../src/auth/scopes';

/** What the auth comparison needs of bench.ts: its row shape and a way to fork an HTTP child. */
export interface AuthPairRow {
  driver: string;
  scenario: string;
  concurrency: number | null;
  tasks: number;
  seconds: number;
  tasksPerSec: number;
  p50Ms: number | null;
  p99Ms: number | null;
  rssMB: number;
  note: string;
}

export interface AuthHttpJob {
  kind: 'http';
  driver: string;
  adapter: 'express' | 'fastify';
  seconds: number;
  role?: 'all' | 'api';
  /** Keys on: the child writes API_KEYS_FILE with this key's hash (tasks:write and read, uppercase). */
  apiKey?: string;
}

type Message = { type: string; port?: number; rssMB?: number; cpuMs?: number };

const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * POST /tasks with API keys off and on, as the same service in two processes started side by
 * side, loaded in alternating rounds (off, on, off, on, ...), so a machine whose load drifts
 * (others' work) weighs on both alike. The cost of authentication is the rate with keys on as a
 * share of the rate with keys off.
 */
export async function runAuthPair(
  job: { driver: string; adapter: 'express' | 'fastify'; seconds: number; rounds: number },
  fork: (job: AuthHttpJob) => ChildProcess,
  onRow: (row: AuthPairRow) => void,
): Promise<void> {
  const key = generateKey();
  // APP_ROLE=all: the consumer's check of each task's key is part of the cost measured.
  const role = 'all' as const;
  const base = { kind: 'http' as const, driver: job.driver, adapter: job.adapter, role };
  const sides = [
    {
      name: 'off',
      child: fork({ ...base, seconds: job.seconds }),
      headers: {} as Record<string, string>,
    },
    {
      name: 'on',
      child: fork({ ...base, seconds: job.seconds, apiKey: key }),
      headers: { authorization: `Bearer ${key}` },
    },
  ];
  try {
    const ports = await Promise.all(sides.map(({ child }) => next(child, 'listening')));
    const rounds = sides.map(() => [] as autocannon.Result[]);
    const body = JSON.stringify({ action: 'uppercase', data: { text: 'hello bench' } });
    const fire = (side: number, duration: number) =>
      autocannon({
        url: `http://127.0.0.1:${ports[side].port}/tasks`,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...sides[side].headers },
        body,
        connections: 100,
        duration,
      });
    // Each round lets the side's consumers finish what it queued before the other side runs,
    // and the order alternates (off-on, on-off, ...), so neither side always goes first.
    const drained = async (side: number): Promise<void> => {
      for (;;) {
        const res = await fetch(
          `http://127.0.0.1:${ports[side].port}/tasks?status=queued&limit=1`,
          {
            headers: sides[side].headers,
          },
        );
        if (!res.ok) throw new Error(`GET /tasks answered ${res.status}`);
        const body = (await res.json()) as { count: number };
        if (body.count === 0) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    const warmUp = [await fire(0, 1), await fire(1, 1)];
    await Promise.all([drained(0), drained(1)]);
    for (let round = 0; round < job.rounds; round++) {
      for (const side of round % 2 === 0 ? [0, 1] : [1, 0]) {
        rounds[side].push(await fire(side, job.seconds));
        await drained(side);
      }
    }
    const rss = await Promise.all(
      sides.map(({ child }) => {
        const done = next(child, 'rss');
        child.send({ type: 'stop' });
        return done;
      }),
    );
    const rates = rounds.map((results) => {
      const ok = results.reduce((n, r) => n + r.requests.total - r.non2xx - r.errors, 0);
      const seconds = results.reduce((n, r) => n + r.duration, 0);
      return { ok, seconds, perSec: ok / seconds };
    });
    const ratio = rates[1].perSec / rates[0].perSec;
    // CPU per accepted request (intake and the consumer's work on it): much less swayed by
    // other processes on the machine than the rate is.
    const cpuPerRequest = [0, 1].map(
      (side) =>
        (rss[side].cpuMs ?? NaN) /
        (rates[side].ok + warmUp[side].requests.total - warmUp[side].non2xx),
    );
    const cpuRatio = cpuPerRequest[1] / cpuPerRequest[0];
    const guardMicros = authWorkMicros(key);
    for (const side of [0, 1]) {
      const results = rounds[side];
      const non2xx = results.reduce((n, r) => n + r.non2xx + r.errors, 0);
      onRow({
        driver: job.driver,
        scenario: `HTTP POST /tasks, API keys ${sides[side].name}, ${job.adapter}, APP_ROLE=${role}`,
        concurrency: 100,
        tasks: rates[side].ok,
        seconds: Math.round(rates[side].seconds),
        tasksPerSec: Math.round(rates[side].perSec),
        p50Ms: median(results.map((r) => r.latency.p50)),
        p99Ms: median(results.map((r) => r.latency.p99)),
        rssMB: Math.round(rss[side].rssMB ?? 0),
        note:
          `autocannon 100 conns, ${job.rounds} rounds of ${job.seconds} s alternating with ` +
          `keys ${sides[1 - side].name}; non-2xx ${non2xx}; ` +
          `server CPU ${(cpuPerRequest[side] * 1000).toFixed(0)} µs per request` +
          (side === 1
            ? `; keys on / off: rate ${ratio.toFixed(3)}, CPU per request ${cpuRatio.toFixed(3)} ` +
              `(cost ${((cpuRatio - 1) * 100).toFixed(1)}%); the key checks alone ` +
              `${guardMicros.toFixed(1)} µs per request = ` +
              `${((guardMicros / (cpuPerRequest[0] * 1000)) * 100).toFixed(2)}% of its CPU`
            : ''),
      });
    }
  } finally {
    for (const { child } of sides) if (child.exitCode === null) child.kill('SIGKILL');
  }
}

function next(child: ChildProcess, type: string): Promise<Message> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: Message): void => {
      if (message.type !== type) return;
      child.off('message', onMessage);
      resolve(message);
    };
    child.on('message', onMessage);
    child.once('exit', (code) =>
      reject(new Error(`bench child exited with ${code} before ${type}`)),
    );
  });
}

/**
 * The key checks of one request and its task, timed alone in a loop (µs each): the guard's (read
 * the header, SHA-256, look up, constant-time compare, scopes), the intake's action glob and the
 * consumer's (key still in force, tenant, action glob). On a loaded machine the two services'
 * rates and CPU swing by more than this whole cost; this figure does not.
 */
function authWorkMicros(key: string, n = 200_000): number {
  const hash = hashKey(key);
  const keys = buildKeySet(
    [
      {
        name: 'bench',
        hash,
        tenant: 'default',
        scopes: ['tasks:write'],
        actions: ['uppercase'],
        source: 'file',
      },
    ],
    true,
  );
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  let ok = 0;
  const run = (count: number): void => {
    for (let i = 0; i < count; i++) {
      const presented = presentedKey(headers)!;
      const computed = hashKey(presented);
      const found = keys.byHash.get(computed);
      if (!found || !sameHash(found.hash, computed)) continue;
      const actor = keys.byName.get(found.keyName)!;
      if (missingScopes(actor.scopes, ['tasks:write']).length > 0) continue;
      if (!actionAllowed(actor.actions, 'uppercase')) continue;
      // The consumer's check of the task's actor.
      const current = keys.byName.get(actor.keyName);
      if (current?.tenant === 'default' && actionAllowed(current.actions, 'uppercase')) ok += 1;
    }
  };
  run(10_000); // warm-up
  const started = performance.now();
  run(n);
  const micros = ((performance.now() - started) * 1000) / n;
  if (ok !== n + 10_000) throw new Error('the bench key was refused');
  return micros;
}
