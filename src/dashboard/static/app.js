// taskq dashboard: plain DOM, no framework. Everything it shows comes from the public HTTP API
// (GET /queues, GET /tasks, GET /tasks/:id, the /tasks/events stream), with the API key kept in
// sessionStorage and sent as `Authorization: Bearer`. The stream is read with fetch, not
// EventSource, because EventSource cannot send that header.

const KEY = 'taskq.apiKey';
const PAGE = 50;
const RATE_WINDOW_MS = 60_000;
const QUEUE_POLL_MS = 3_000;

const $ = (selector) => document.querySelector(selector);

const state = {
  /** id → task as GET /tasks/:id answers, for the rows shown. */
  tasks: new Map(),
  /** Row order: ids, newest first. */
  order: [],
  filters: {},
  cursor: null,
  /** Recent status events for the rates line: {at, status}. */
  recent: [],
  /** Previous queue counts: name → {at, waiting}. */
  lastCounts: new Map(),
  detailId: null,
};

// ---- HTTP ----------------------------------------------------------------------------------

function authHeaders() {
  const key = sessionStorage.getItem(KEY);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { ...authHeaders(), ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const message = Array.isArray(json?.message) ? json.message.join('; ') : json?.message;
    const hint = response.status === 401 || response.status === 403 ? ' (check the API key)' : '';
    throw new Error(
      `${method} ${path}: ${response.status} ${message ?? response.statusText}${hint}`,
    );
  }
  return json;
}

function notify(error) {
  const notice = $('#notice');
  if (!error) {
    notice.hidden = true;
    return;
  }
  notice.textContent = error instanceof Error ? error.message : String(error);
  notice.hidden = false;
}

/** Runs an action from a button; its failure shows in the notice line. */
async function act(work) {
  try {
    await work();
    notify(null);
  } catch (error) {
    notify(error);
  }
}

// ---- queues --------------------------------------------------------------------------------

async function loadQueues() {
  const { queues } = await api('GET', '/queues');
  const body = $('#queues tbody');
  const now = Date.now();
  body.replaceChildren(
    ...queues.map((queue) => {
      const previous = state.lastCounts.get(queue.name);
      state.lastCounts.set(queue.name, { at: now, waiting: queue.waiting });
      const rate =
        previous && now > previous.at
          ? ((queue.waiting - previous.waiting) * 1000) / (now - previous.at)
          : null;
      const busy = queue.consumers.reduce((n, c) => n + c.busy, 0);
      const concurrency = queue.consumers.reduce((n, c) => n + c.concurrency, 0);
      const row = document.createElement('tr');
      row.dataset.queue = queue.name;
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.action = queue.paused ? 'resume' : 'pause';
      button.textContent = queue.paused ? 'Resume' : 'Pause';
      button.addEventListener('click', () =>
        act(async () => {
          await api('POST', `/queues/${encodeURIComponent(queue.name)}/${button.dataset.action}`);
          await loadQueues();
        }),
      );
      row.append(
        cell(queue.name),
        cell(queue.driver),
        cell(queue.waiting, 'num', 'waiting'),
        cell(queue.inFlight, 'num', 'inFlight'),
        cell(queue.delayed, 'num', 'delayed'),
        cell(queue.failed, 'num', 'failed'),
        cell(rate === null ? '–' : rate.toFixed(1), 'num'),
        cell(concurrency ? `${busy} / ${concurrency}` : '– (other processes)', 'num'),
        cell(queue.paused ? 'paused' : 'running', '', 'paused'),
        cell(button),
      );
      return row;
    }),
  );
}

let queueRefresh;
/** At most one queue reload a second, however many events arrive. */
function refreshQueuesSoon() {
  queueRefresh ??= setTimeout(() => {
    queueRefresh = undefined;
    loadQueues().catch(notify);
  }, 1000);
}

function renderRates() {
  const since = Date.now() - RATE_WINDOW_MS;
  state.recent = state.recent.filter((e) => e.at >= since);
  const count = (status) => state.recent.filter((e) => e.status === status).length;
  const perSecond = (n) => (n / (RATE_WINDOW_MS / 1000)).toFixed(2);
  const [accepted, completed, failed] = ['queued', 'completed', 'failed'].map(count);
  $('#rates').textContent =
    `last 60 s, all processes: ${accepted} queued (${perSecond(accepted)}/s) · ` +
    `${completed} completed (${perSecond(completed)}/s) · ${failed} failed (${perSecond(failed)}/s)`;
}

// ---- tasks ---------------------------------------------------------------------------------

function readFilters() {
  const form = new FormData($('#filters'));
  const filters = {};
  for (const name of ['status', 'action']) {
    const value = String(form.get(name) ?? '').trim();
    if (value) filters[name] = value;
  }
  for (const name of ['createdAfter', 'createdBefore']) {
    const value = String(form.get(name) ?? '');
    if (value) filters[name] = new Date(value).toISOString();
  }
  return filters;
}

async function loadTasks(append = false) {
  const query = new URLSearchParams({ ...state.filters, limit: String(PAGE) });
  if (append && state.cursor) query.set('cursor', state.cursor);
  const page = await api('GET', `/tasks?${query}`);
  if (!append) {
    state.tasks.clear();
    state.order = [];
  }
  for (const task of page.tasks) {
    if (!state.tasks.has(task.id)) state.order.push(task.id);
    state.tasks.set(task.id, task);
  }
  state.cursor = page.nextCursor;
  $('#more').hidden = !page.nextCursor;
  renderTasks();
}

/** Whether a task belongs in the table under the current filters. */
function matches(task) {
  const f = state.filters;
  return (
    (!f.status || task.status === f.status) &&
    (!f.action || task.action === f.action) &&
    (!f.createdAfter || task.createdAt > f.createdAfter) &&
    (!f.createdBefore || task.createdAt < f.createdBefore)
  );
}

function renderTasks() {
  const body = $('#tasks tbody');
  const rows = new Map([...body.children].map((row) => [row.dataset.taskId, row]));
  const wanted = state.order.map((id) => {
    const row = rows.get(id) ?? document.createElement('tr');
    fillTaskRow(row, state.tasks.get(id));
    return row;
  });
  body.replaceChildren(...wanted);
}

function fillTaskRow(row, task) {
  row.dataset.taskId = task.id;
  row.dataset.status = task.status;
  const link = document.createElement('a');
  link.href = `#/tasks/${task.id}`;
  // UUIDv7: the first characters are the creation time, alike for tasks made together.
  link.textContent = `…${task.id.slice(-8)}`;
  link.title = task.id;
  const status = cell(task.status, 'status', 'status');
  status.dataset.status = task.status;
  const bar = document.createElement('progress');
  bar.max = 100;
  bar.value = task.status === 'completed' ? 100 : (task.progress ?? 0);
  bar.title = task.progressMessage ?? `${bar.value}%`;
  const outcome = task.error ?? (task.result === null ? '' : JSON.stringify(task.result));
  const outcomeCell = cell(outcome, task.error ? 'outcome error' : 'outcome', 'outcome');
  outcomeCell.title = outcome;
  row.replaceChildren(
    cell(link),
    cell(task.action, '', 'action'),
    status,
    cell(`${task.attempt} / ${task.maxAttempts}`, 'num', 'attempts'),
    cell(bar, '', 'progress'),
    outcomeCell,
    cell(new Date(task.createdAt).toLocaleString()),
    cell(buttons(task)),
  );
}

function buttons(task) {
  const span = document.createElement('span');
  span.append(...taskButtons(task));
  return span;
}

function taskButtons(task) {
  const buttons = [];
  if (task.status === 'queued' || task.status === 'running') {
    buttons.push(button('Cancel', 'cancel', () => control(task.id, 'cancel')));
  }
  if (task.status === 'failed' || task.status === 'cancelled') {
    buttons.push(button('Retry', 'retry', () => control(task.id, 'retry')));
  }
  return buttons;
}

async function control(id, what) {
  await act(async () => {
    const task = await api('POST', `/tasks/${encodeURIComponent(id)}/${what}`);
    update(task);
  });
}

/** A fresh copy of one task (from the API) goes into the table and the detail view. */
function update(task) {
  if (state.tasks.has(task.id)) {
    state.tasks.set(task.id, task);
    renderTasks();
  }
  if (state.detailId === task.id) renderDetail(task);
}

const pendingReads = new Map();
/** Re-reads a task shortly after its events, once for a burst of them. */
function refreshTaskSoon(id) {
  if (pendingReads.has(id)) return;
  pendingReads.set(
    id,
    setTimeout(() => {
      pendingReads.delete(id);
      api('GET', `/tasks/${encodeURIComponent(id)}`).then(update, notify);
    }, 100),
  );
}

let headReload;
/**
 * New tasks appear by re-reading the first page (at most once a second), not one request per
 * event, so a burst of submissions costs the API little.
 */
function reloadHeadSoon() {
  headReload ??= setTimeout(() => {
    headReload = undefined;
    const query = new URLSearchParams({ ...state.filters, limit: String(PAGE) });
    api('GET', `/tasks?${query}`).then((page) => {
      const fresh = page.tasks.filter((task) => !state.tasks.has(task.id) && matches(task));
      for (const task of fresh) state.tasks.set(task.id, task);
      state.order.unshift(...fresh.map((task) => task.id));
      if (fresh.length > 0) renderTasks();
    }, notify);
  }, 300);
}

// ---- detail view ---------------------------------------------------------------------------

async function showDetail(id) {
  state.detailId = id;
  if (!id) {
    $('#detail').hidden = true;
    return;
  }
  await act(async () => renderDetail(await api('GET', `/tasks/${encodeURIComponent(id)}`)));
}

function renderDetail(task) {
  $('#detail').hidden = false;
  $('#detail').dataset.taskId = task.id;
  $('#detail-id').textContent = task.id;
  const fields = [
    ['action', task.action],
    ['status', task.status],
    ['attempts', `${task.attempt} / ${task.maxAttempts}`],
    ['progress', task.progress === null ? '–' : `${task.progress}% ${task.progressMessage ?? ''}`],
    ['priority', task.priority],
    ['created', task.createdAt],
    ['run at', task.runAt ?? '–'],
    ['started', task.startedAt ?? '–'],
    ['finished', task.processedAt ?? '–'],
    ['time limit', task.timeoutMs ? `${task.timeoutMs} ms` : '–'],
    ['data', json(task.data)],
    ['result', task.result === null ? '–' : json(task.result)],
    ['error', task.error ?? '–'],
    ['callback', task.callback ? json(task.callback) : '–'],
  ];
  $('#detail-fields').replaceChildren(
    ...fields.flatMap(([name, value]) => {
      const dt = document.createElement('dt');
      dt.textContent = name;
      const dd = document.createElement('dd');
      dd.dataset.field = name;
      dd.append(value);
      return [dt, dd];
    }),
  );
  $('#detail .actions').replaceChildren(...taskButtons(task));
}

function json(value) {
  const pre = document.createElement('pre');
  pre.textContent = JSON.stringify(value, null, 2);
  return pre;
}

function routeFromHash() {
  const match = /^#\/tasks\/([^/]+)$/.exec(location.hash);
  void showDetail(match ? decodeURIComponent(match[1]) : null);
}

// ---- the event stream ----------------------------------------------------------------------

let stream;

function onEvent(event) {
  if (event.type === 'status') {
    state.recent.push({ at: Date.now(), status: event.status });
    renderRates();
    refreshQueuesSoon();
  }
  const task = state.tasks.get(event.taskId);
  if (task) {
    // Show the change at once; the re-read below brings result, error and attempts.
    task.status = event.status;
    if (event.type === 'progress') {
      task.progress = event.progress;
      task.progressMessage = event.progressMessage ?? null;
    }
    renderTasks();
  }
  if (event.type === 'status' && (task || state.detailId === event.taskId)) {
    refreshTaskSoon(event.taskId);
  } else if (!task && event.type === 'status' && event.status === 'queued') {
    reloadHeadSoon();
  }
}

/** Reads /tasks/events with fetch; reconnects with a growing pause, reloading what was missed. */
async function connect() {
  let pause = 1000;
  for (;;) {
    const controller = new AbortController();
    stream = controller;
    try {
      const response = await fetch('/tasks/events', {
        headers: { ...authHeaders(), Accept: 'text/event-stream' },
        signal: controller.signal,
      });
      if (!response.ok) throw new Error(`GET /tasks/events: ${response.status}`);
      setLive('live', 'live');
      pause = 1000;
      // Events are not replayed: what changed while disconnected comes from a reload.
      await Promise.all([loadTasks(), loadQueues()]).catch(notify);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block
            .split('\n')
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(5).replace(/^ /, ''))
            .join('\n');
          if (data) onEvent(JSON.parse(data));
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      notify(error);
    }
    setLive('down', `disconnected; retrying in ${pause / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 10_000);
  }
}

function reconnect() {
  stream?.abort();
  setLive('connecting', 'connecting…');
  void connect();
}

function setLive(kind, text) {
  $('#live').dataset.state = kind;
  $('#live').textContent = text;
}

// ---- helpers and start -----------------------------------------------------------------------

function cell(content, className = '', field = '') {
  const td = document.createElement('td');
  if (className) td.className = className;
  if (field) td.dataset.field = field;
  if (content instanceof Node) td.append(content);
  else td.textContent = String(content);
  return td;
}

function button(text, action, onClick) {
  const element = document.createElement('button');
  element.type = 'button';
  element.textContent = text;
  element.dataset.action = action;
  element.addEventListener('click', onClick);
  return element;
}

function start() {
  $('#api-key').value = sessionStorage.getItem(KEY) ?? '';
  $('#key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const key = $('#api-key').value.trim();
    if (key) sessionStorage.setItem(KEY, key);
    else sessionStorage.removeItem(KEY);
    reconnect();
  });
  $('#filters').addEventListener('submit', (event) => {
    event.preventDefault();
    state.filters = readFilters();
    state.cursor = null;
    void act(() => loadTasks());
  });
  $('#more').addEventListener('click', () => act(() => loadTasks(true)));
  $('#detail .close').addEventListener('click', (event) => {
    event.preventDefault();
    history.replaceState(null, '', location.pathname + location.search);
    void showDetail(null);
  });
  window.addEventListener('hashchange', routeFromHash);
  setInterval(() => {
    loadQueues().catch(notify);
    renderRates();
  }, QUEUE_POLL_MS);
  routeFromHash();
  reconnect();
}

start();
