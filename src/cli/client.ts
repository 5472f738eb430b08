/** An answer of the API other than 2xx: its status and the message it gave. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
}

/** A task change from `GET /tasks/events`. */
export interface TaskEvent {
  type: 'status' | 'progress';
  taskId: string;
  action: string;
  status: string;
  progress?: number | null;
  progressMessage?: string | null;
  at: number;
}

export interface Task {
  id: string;
  action: string;
  status: string;
  attempt: number;
  maxAttempts: number;
  progress: number | null;
  result: unknown;
  error: string | null;
  createdAt: string;
}

export interface Queue {
  name: string;
  driver: string;
  waiting: number;
  inFlight: number;
  delayed: number;
  failed: number;
  paused: boolean;
  consumers: { concurrency: number; busy: number }[];
}

/**
 * The public HTTP API, as any remote client uses it: `fetch`, JSON, and the API key (when given)
 * as `Authorization: Bearer`. Never prints the key.
 */
export class TaskqClient {
  private readonly base: string;

  constructor(
    url: string,
    private readonly apiKey?: string,
  ) {
    this.base = url.replace(/\/+$/, '');
  }

  get url(): string {
    return this.base;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers: {
          ...this.auth(),
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(
        `cannot reach ${this.base}: ${cause?.code ?? cause?.message ?? String(error)}`,
        { cause: error },
      );
    }
    const text = await response.text();
    const json = safeJson(text);
    if (!response.ok) {
      const retryAfter = Number(response.headers.get('retry-after'));
      throw new ApiError(
        response.status,
        `${response.status} ${errorMessage(json) ?? response.statusText}`,
        Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
      );
    }
    return json as T;
  }

  /** Every task matching `filter`, following `nextCursor` pages. */
  async allTasks(filter: Record<string, string | undefined>): Promise<Task[]> {
    const tasks: Task[] = [];
    let cursor: string | null = null;
    do {
      const query = new URLSearchParams({ limit: '100' });
      for (const [key, value] of Object.entries(filter)) if (value) query.set(key, value);
      if (cursor) query.set('cursor', cursor);
      const page: { tasks: Task[]; nextCursor: string | null } = await this.request(
        'GET',
        `/tasks?${query.toString()}`,
      );
      tasks.push(...page.tasks);
      cursor = page.nextCursor;
    } while (cursor);
    return tasks;
  }

  /**
   * Reads `GET /tasks/events` until `signal` aborts or the server ends the stream, calling
   * `onEvent` for each event. Resolves once the stream is over; `onOpen` runs when it is open.
   */
  async events(
    query: Record<string, string | undefined>,
    onEvent: (event: TaskEvent) => void,
    signal: AbortSignal,
    onOpen?: () => void,
  ): Promise<void> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value) params.set(key, value);
    const path = `/tasks/events${params.size ? `?${params.toString()}` : ''}`;
    let response: Response;
    try {
      response = await fetch(this.base + path, {
        headers: { ...this.auth(), Accept: 'text/event-stream' },
        signal,
      });
    } catch (error) {
      if (signal.aborted) return;
      const cause = (error as { cause?: { code?: string } }).cause;
      throw new Error(`cannot reach ${this.base}: ${cause?.code ?? String(error)}`, {
        cause: error,
      });
    }
    if (!response.ok || !response.body) {
      const text = await response.text();
      throw new ApiError(
        response.status,
        `${response.status} ${errorMessage(safeJson(text)) ?? text}`,
      );
    }
    onOpen?.();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block
            .split('\n')
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(5).replace(/^ /, ''))
            .join('\n');
          if (data) onEvent(JSON.parse(data) as TaskEvent);
        }
      }
    } catch (error) {
      if (!signal.aborted) throw error;
    }
  }

  private auth(): Record<string, string> {
    return this.apiKey ? { Authorization: `Bearer ${this.apiKey}` } : {};
  }
}

function safeJson(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The API's error text: Nest answers `{message: string | string[]}`. */
function errorMessage(body: unknown): string | undefined {
  if (typeof body === 'string') return body || undefined;
  const message = (body as { message?: unknown } | null)?.message;
  if (Array.isArray(message)) return message.join('; ');
  return typeof message === 'string' ? message : undefined;
}
