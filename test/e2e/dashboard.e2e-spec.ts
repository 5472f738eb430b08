import { existsSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { ROOT } from '../helpers/child-process';
import { startTestApp, tempDir, type TestApp } from '../helpers/create-test-app';
import { probe, TestHandlersModule } from '../helpers/test-handlers';

/**
 * The browser globals the functions run in the page use (this project compiles without the DOM
 * library). Functions, not strings: the page's CSP (helmet) forbids evaluating strings.
 */
interface InPage {
  document: { querySelectorAll(selector: string): ArrayLike<{ textContent: string | null }> };
  sessionStorage: { getItem(key: string): string | null };
}

/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core, against the real
 * application. `.ci/run` installs chromium when it is missing; without it the suite is skipped
 * (a failure under CI=true). DASHBOARD_SCREENSHOT=1 writes the README's screenshot to docs/.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

function describeWithChromium(title: string, suite: () => void): void {
  if (existsSync(CHROMIUM)) return describe(title, suite);
  if (process.env.CI === 'true') {
    return describe(title, () => {
      it(`needs ${CHROMIUM}`, () => {
        throw new Error(`${CHROMIUM} is missing (apt-get install -y chromium), and CI=true`);
      });
    });
  }
  console.warn(`skipping "${title}": ${CHROMIUM} is missing (apt-get install -y chromium)`);
  describe.skip(title, suite);
}

/** The page's <progress> element, as far as the test reads it (no DOM types in this build). */
interface Bar {
  value: number;
  max: number;
}

describeWithChromium('the dashboard in Chromium', () => {
  const dir = tempDir();
  let t: TestApp;
  let base: string;
  let context: BrowserContext;
  let page: Page;
  const authorizations = new Set<string>();

  beforeAll(async () => {
    probe.reset();
    t = await startTestApp({
      dbPath: join(dir.path, 'tasks.db'),
      modules: [TestHandlersModule],
      env: { WORKER_CONCURRENCY: '4' },
    });
    await t.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(t.app.getHttpServer().address() as AddressInfo).port}`;
    context = await chromium.launchPersistentContext(join(dir.path, 'profile'), {
      executablePath: CHROMIUM,
      args: FLAGS,
      headless: true,
      viewport: { width: 1400, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('request', (request) => {
      const header = request.headers().authorization;
      if (header && request.url().startsWith(base)) authorizations.add(header);
    });
    await page.goto(`${base}/dashboard`);
    // The key field: kept in sessionStorage and sent on every API call from now on.
    await page.fill('#api-key', 'test-key');
    await page.click('#key-form button');
    await page.waitForSelector('#live[data-state="live"]');
  });
  afterAll(async () => {
    await context?.close();
    probe.gate.resolve();
    await t?.close();
    dir.remove();
  });

  const row = (id: string) => page.locator(`#tasks tr[data-task-id="${id}"]`);
  const submit = async (body: object): Promise<string> =>
    (await t.http.post('/tasks').send(body).expect(202)).body.id as string;

  it('shows a task submitted through the API until its row is completed with a full progress bar', async () => {
    const id = await submit({ action: 'sleep', data: { ms: 900, steps: 3 } });

    await row(id).locator('[data-field="status"]', { hasText: 'completed' }).waitFor();
    // The status event paints the row at once; result and attempts come with the re-read after it.
    await row(id)
      .locator('[data-field="outcome"]', { hasText: '{"output":"slept","sleptMs":900}' })
      .waitFor();
    const bar = row(id).locator('progress');
    expect(
      await bar.evaluate((el) => [(el as unknown as Bar).value, (el as unknown as Bar).max]),
    ).toEqual([100, 100]);
    expect(await bar.getAttribute('title')).toBe('step 3 of 3');
    await expect(row(id).locator('[data-field="outcome"]').textContent()).resolves.toBe(
      '{"output":"slept","sleptMs":900}',
    );
    expect(await row(id).locator('[data-field="attempts"]').textContent()).toBe('1 / 3');
    expect(authorizations).toEqual(new Set(['Bearer test-key']));
    expect(
      await page.evaluate(() =>
        (globalThis as unknown as InPage).sessionStorage.getItem('taskq.apiKey'),
      ),
    ).toBe('test-key');
  });

  it('retries a failed task from its button', async () => {
    const id = await submit({ action: 'flaky-once', data: {} });
    await row(id).locator('[data-field="status"]', { hasText: 'failed' }).waitFor();
    await row(id).locator('[data-field="outcome"]', { hasText: 'first call fails' }).waitFor();
    expect(await row(id).locator('[data-field="outcome"]').textContent()).toBe('first call fails');

    await row(id).locator('button[data-action="retry"]').click();

    await row(id).locator('[data-field="status"]', { hasText: 'completed' }).waitFor();
    expect((await t.http.get(`/tasks/${id}`)).body).toMatchObject({
      status: 'completed',
      result: { output: 'fine' },
    });
  });

  it('cancels a running task from its button, and shows its details', async () => {
    const id = await submit({ action: 'hold', data: {} });
    await row(id).locator('[data-field="status"]', { hasText: 'running' }).waitFor();
    await row(id).locator('button[data-action="cancel"]').click();
    await row(id).locator('[data-field="status"]', { hasText: 'cancelled' }).waitFor();

    await row(id).locator('a').click();
    const detail = page.locator(`#detail[data-task-id="${id}"]`);
    await detail.waitFor();
    expect(await detail.locator('[data-field="status"]').textContent()).toBe('cancelled');
    expect(await detail.locator('[data-field="action"]').textContent()).toBe('hold');
    expect(await detail.locator('button[data-action="retry"]').count()).toBe(1);
  });

  it('filters the task table by status, action and creation time', async () => {
    // The tasks so far: a completed sleep, a completed flaky-once, a cancelled hold.
    const shown = (): Promise<string[]> =>
      page.$$eval('#tasks tbody tr [data-field="action"]', (cells) =>
        cells.map((cell) => cell.textContent ?? ''),
      );
    const apply = async (fields: Record<string, string>) => {
      for (const [name, value] of Object.entries(fields)) {
        if (name === 'status') await page.selectOption('#filters select[name="status"]', value);
        else await page.fill(`#filters input[name="${name}"]`, value);
      }
      await page.click('#filters button[type="submit"]');
    };
    const expectRows = async (actions: string[]) => {
      await page.waitForFunction(
        (expected) =>
          Array.from(
            (globalThis as unknown as InPage).document.querySelectorAll(
              '#tasks tbody tr [data-field="action"]',
            ),
          )
            .map((c) => c.textContent)
            .join() === expected,
        actions.join(),
      );
      expect(await shown()).toEqual(actions);
    };

    await apply({ status: 'cancelled' });
    await expectRows(['hold']);
    await apply({ status: '', action: 'sleep' });
    await expectRows(['sleep']);
    await apply({ action: '', createdBefore: '2000-01-01T00:00:00' });
    await expectRows([]);
    await apply({ createdBefore: '', createdAfter: '2000-01-01T00:00:00' });
    await expectRows(['hold', 'flaky-once', 'sleep']);
    await apply({ createdAfter: '' });
  });

  it('pauses and resumes a queue', async () => {
    const queue = page.locator('#queues tr[data-queue="tasks"]');
    await queue.locator('button[data-action="pause"]').click();
    await queue.locator('[data-field="paused"]', { hasText: 'paused' }).waitFor();
    expect((await t.http.get('/queues')).body.queues[0]).toMatchObject({ paused: true });

    await queue.locator('button[data-action="resume"]').click();
    await queue.locator('[data-field="paused"]', { hasText: 'running' }).waitFor();
    expect((await t.http.get('/queues')).body.queues[0]).toMatchObject({ paused: false });
  });

  it('shows every new task as a row (and takes the README screenshot with DASHBOARD_SCREENSHOT=1)', async () => {
    // A few tasks of each kind, so the picture shows what an operator sees.
    await submit({ action: 'sleep', data: { ms: 60_000, steps: 4 } });
    await submit({ action: 'uppercase', data: { text: 'hello' } });
    await submit({ action: 'sum', data: { numbers: [1, 2, 3] } });
    const last = await submit({ action: 'uppercase', data: { text: 'world' } });
    await row(last).locator('[data-field="status"]', { hasText: 'completed' }).waitFor();
    const file = process.env.DASHBOARD_SCREENSHOT
      ? join(ROOT, 'docs', 'dashboard.png')
      : join(dir.path, 'dashboard.png');
    mkdirSync(join(file, '..'), { recursive: true });
    await page.waitForFunction(
      () =>
        (globalThis as unknown as InPage).document.querySelectorAll('#tasks tbody tr').length === 7,
    );
    await page.screenshot({ path: file, fullPage: true });
    expect(existsSync(file)).toBe(true);
  });
});

describe.each(['express', 'fastify'] as const)('GET /dashboard on %s', (adapter) => {
  const dir = tempDir();
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ adapter, dbPath: join(dir.path, 'tasks.db') });
  });
  afterAll(async () => {
    await t.close();
    dir.remove();
  });

  it('serves the page, its script and its stylesheet with their types', async () => {
    const html = await t.http.get('/dashboard').expect(200);
    expect(html.headers['content-type']).toMatch(/^text\/html/);
    expect(html.text).toContain('<script type="module" src="/dashboard/app.js">');
    const script = await t.http.get('/dashboard/app.js').expect(200);
    expect(script.headers['content-type']).toMatch(/^text\/javascript/);
    expect(script.text).toContain("fetch('/tasks/events'");
    const style = await t.http.get('/dashboard/style.css').expect(200);
    expect(style.headers['content-type']).toMatch(/^text\/css/);
    await t.http.get('/dashboard/nothing.js').expect(404);
  });
});
