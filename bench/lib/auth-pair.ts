import autocannon from 'autocannon';
import type { ChildProcess } from 'node:child_process';
import { generateKey } from '../../src/auth/api-key';

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
  /** Keys on: the child writes API_KEYS_FILE with this key's hash (tasks:write, uppercase). */
  apiKey?: string;
}

type Message = { type: string; port?: number; rssMB?: number };

const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * POST /tasks with API keys off and on, as the same service in two processes started side by
 * side, loaded in alternating rounds (off, on, off, on, ...), so a machine whose load drifts
 * (others' work) weighs on both alike. APP_ROLE=api (no consumers competing for the CPU) except
 * on memory, whose messages never leave the process. The cost of authentication is the rate
 * with keys on as a share of the rate with keys off.
 */
export async function runAuthPair(
  job: { driver: string; adapter: 'express' | 'fastify'; seconds: number; rounds: number },
  fork: (job: AuthHttpJob) => ChildProcess,
  onRow: (row: AuthPairRow) => void,
): Promise<void> {
  const key = generateKey();
  const role: 'all' | 'api' = job.driver === 'memory' ? 'all' : 'api';
  const base = { kind: 'http' as const, driver: job.driver, adapter: job.adapter, role };
  const sides = [
    { name: 'off', child: fork({ ...base, seconds: job.seconds }), headers: {} },
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
    for (const side of [0, 1]) await fire(side, 1); // warm-up
    for (let round = 0; round < job.rounds; round++) {
      for (const side of [0, 1]) rounds[side].push(await fire(side, job.seconds));
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
          `keys ${sides[1 - side].name}; non-2xx ${non2xx}` +
          (side === 1
            ? `; keys on / off = ${ratio.toFixed(3)} (cost ${((1 - ratio) * 100).toFixed(1)}%)`
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
