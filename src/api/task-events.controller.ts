import {
  type BeforeApplicationShutdown,
  Controller,
  type MessageEvent,
  Query,
  Res,
  Sse,
} from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { ApiBadRequestResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { interval, map, merge, Observable, ReplaySubject, takeUntil } from 'rxjs';
import { type Actor, taskActorOf } from '../auth/actor';
import { CurrentActor, RequireScopes } from '../auth/require-scopes.decorator';
import { TaskEventsQueryDto } from './dto/task-events.query.dto';
import { type TaskEvent, TaskEvents } from '../tasks/task-events.service';

/** A comment line this often keeps proxies from closing a quiet stream. */
export const SSE_HEARTBEAT_MS = 15_000;
/** How long shutdown waits for ended streams' responses to be sent. */
const SHUTDOWN_WAIT_MS = 1_000;

/**
 * `GET /tasks/events`: task changes as server-sent events. Registered before TasksController,
 * so on express (which matches routes in registration order) `GET /tasks/:id` does not take
 * `events` for an id; fastify prefers the static path anyway.
 */
@ApiTags('tasks')
@Controller('tasks')
export class TaskEventsController implements BeforeApplicationShutdown {
  /** Completes every open stream when the application shuts down (and any opened after). */
  private readonly closing = new ReplaySubject<void>(1);
  /** One promise per open stream, settled once its response is over. */
  private readonly open = new Set<Promise<void>>();

  constructor(private readonly events: TaskEvents) {}

  @Sse('events')
  @RequireScopes('tasks:read')
  @ApiOperation({
    summary: 'Stream task status and progress changes (server-sent events)',
    description:
      'Each event is `data: <JSON>` with `{type: "status"|"progress", taskId, action, status, ' +
      'progress?, progressMessage?, at}` (`at` in epoch ms). A `: heartbeat` comment is sent ' +
      `every ${SSE_HEARTBEAT_MS / 1000} s. Only changes made by the process serving the stream ` +
      'are seen, so with separate API and worker processes connect to a process that runs ' +
      'workers (APP_ROLE=all). Events are not replayed: read `GET /tasks/:id` after connecting ' +
      'for the state so far.',
  })
  @ApiOkResponse({
    description: 'An open `text/event-stream`.',
    content: { 'text/event-stream': { schema: { type: 'string' } } },
  })
  @ApiBadRequestResponse({ description: 'A bad query parameter.' })
  stream(
    @Query() query: TaskEventsQueryDto,
    @Res({ passthrough: true }) res: ServerResponse | { raw: ServerResponse },
    @CurrentActor() actor?: Actor,
  ): Observable<MessageEvent> {
    this.track('raw' in res ? res.raw : res);
    // A stream carries only its key's tenant's events.
    const { tenant } = taskActorOf(actor);
    const changes = new Observable<MessageEvent>((subscriber) =>
      this.events.subscribe((event) => {
        if (event.tenant === tenant && matches(event, query)) subscriber.next({ data: event });
      }),
    );
    const heartbeats = interval(SSE_HEARTBEAT_MS).pipe(
      map((): MessageEvent => ({ comment: 'heartbeat' })),
    );
    return merge(changes, heartbeats).pipe(takeUntil(this.closing));
  }

  /**
   * Ends open streams, and waits until their responses are over, before the HTTP server closes:
   * a keep-alive connection whose response ends only after the server began closing is kept
   * until its idle timeout, which would hold `app.close()` up.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.closing.next();
    this.closing.complete();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.open),
      new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_WAIT_MS))),
    ]);
    clearTimeout(timer);
  }

  private track(response: ServerResponse): void {
    const over = new Promise<void>((resolve) => {
      if (response.closed) resolve();
      else response.once('close', () => resolve());
    });
    this.open.add(over);
    void over.then(() => this.open.delete(over));
  }
}

function matches(event: TaskEvent, query: TaskEventsQueryDto): boolean {
  return (
    (query.taskId === undefined || event.taskId === query.taskId) &&
    (query.action === undefined || event.action === query.action)
  );
}
