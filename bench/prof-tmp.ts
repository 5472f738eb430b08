import { createBenchApp } from './lib/bench-app';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'prof-'));
  delete process.env.DATABASE_URL;
  const conc = process.env.CONC ?? '1';
  const bench = await createBenchApp({ QUEUE_DRIVER: 'sqlite', QUEUE_NAME: 'p', DATABASE_PATH: join(dir, 't.db'), PORT: '0', LOG_LEVEL: 'warn', WORKER_CONCURRENCY: conc, WORKER_PREFETCH: String(Math.max(10, Number(conc) * 2)) });
  await bench.driver.pauseQueue(bench.queue);
  const N = Number(process.env.N ?? 20000);
  for (let done = 0; done < N; done += 5000) await bench.bulkEnqueue(Array.from({ length: 5000 }, () => bench.row('noop', {})));
  const base = bench.succeeded();
  const t0 = performance.now();
  const cpu = process.cpuUsage();
  await bench.driver.resumeQueue(bench.queue);
  while (bench.succeeded() - base < N) await new Promise((r) => setTimeout(r, 2));
  const used = process.cpuUsage(cpu);
  console.log('process', (N / ((performance.now() - t0) / 1000)).toFixed(0), '/s', ((used.user + used.system) / N).toFixed(0), 'µs/task');
  await bench.close();
}
void main();
