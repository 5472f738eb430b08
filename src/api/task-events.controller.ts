import {
  type BeforeApplicationShutdown,
  Controller,
  Get,
  HttpStatus,
  type OnModuleDestroy,
  Query,
  Req,
  Res,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { ServerResponse } from 'node:http';
import {
  ApiBadRequestResponse,
  ApiOkResponse,
  ApiOperation,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { AppConfig } from '../config/app.config';
import { InjectAppConfig } from '../config/inject-app-config.decorator';
import { type Actor, taskActorOf } from '../auth/actor';
import { CurrentActor, RequireScopes } from '../auth/require-scopes.decorator';
import { TaskEventsQueryDto } from './dto/task-events.query.dto';
import { TaskEvents } from '../tasks/task-events.service';
import { clientIdentity } from './client-identity';
import { type EventSink, TaskEventFanout } from './task-event-fanout';

/** A comment line this often keeps proxies from closing a quiet stream. */
export const SSE_HEARTBEAT_MS = 15_000;
/** How long shutdown waits for ended streams' responses to be sent. */
const SHUTDOWN_WAIT_MS = 1_000;
/** Seconds a client refused a stream is asked to wait. */
const RETRY_AFTER_S = 5;

/** The fastify reply wraps the Node response; express hands the response itself. */
interface FastifyReplyLike {
  raw: ServerResponse;
  hijack(): void;
  getHeaders(): Record<string, string | number | string[] | undefined>;
}

/**
 * `GET /tasks/events`: task changes as server-sent events. Registered before TasksController,
 * so on express (which matches routes in registration order) `GET /tasks/:id` does not take
 * `events` for an id; fastify prefers the static path anyway.
 *
 * Writes to the Node response itself rather than through Nest's `@Sse`, so that a stream's
 * unsent data can be seen and bounded (see TaskEventFanout): one listener on TaskEvents feeds
 * every stream of this process.
 */
@ApiTags('tasks')
@Controller('tasks')
export class TaskEventsController implements BeforeApplicationShutdown, OnModuleDestroy {
  readonly fanout: TaskEventFanout;
  /** One promise per open stream, settled once its response is over. */
  private readonly open = new Set<Promise<void>>();
  private closing = false;
  private unsubscribe?: () => void;
  private heartbeat?: NodeJS.Timeout;

  constructor(
    private readonly events: TaskEvents,
    private readonly adapterHost: HttpAdapterHost,
    @InjectAppConfig() config: AppConfig,
  ) {
    this.fanout = new TaskEventFanout(config.eventStream);
  }

  @Get('events')
  @RequireScopes('tasks:read')
  @ApiOperation({
    summary: 'Stream task status and progress changes (server-sent events)',
    description:
      'Each event is `data: <JSON>` with `{type: "status"|"progress", taskId, action, status, ' +
      'progress?, progressMessage?, at}` (`at` in epoch ms). A `: heartbeat` comment is sent ' +
      `every ${SSE_HEARTBEAT_MS / 1000} s. Changes made by every process of the deployment ` +
      'are seen (TASK_EVENTS_BUS; `local` limits it to the serving process). Events are not ' +
      'replayed: read `GET /tasks/:id` after connecting for the state so far. Streams are capped ' +
      'per process and per client (SSE_MAX_CONNECTIONS, SSE_MAX_CONNECTIONS_PER_CLIENT), and a ' +
      'client that does not read is disconnected once SSE_MAX_BUFFER_BYTES are waiting for it.',
  })
  @ApiOkResponse({
    description: 'An open `text/event-stream`.',
    content: { 'text/event-stream': { schema: { type: 'string' } } },
  })
  @ApiBadRequestResponse({ description: 'A bad query parameter.' })
  @ApiResponse({
    status: 429,
    description: 'Too many open streams, in this process or of this client; see Retry-After.',
  })
  stream(
    @Query() query: TaskEventsQueryDto,
    @Req() request: unknown,
    @Res() response: ServerResponse | FastifyReplyLike,
    @CurrentActor() actor?: Actor,
  ): void {
    const raw = 'raw' in response ? response.raw : response;
    const sink: EventSink = {
      write: (chunk) => raw.write(chunk),
      get buffered() {
        return raw.writableLength;
      },
      end: () => raw.end(),
      destroy: () => raw.destroy(),
    };
    // A stream carries only its key's tenant's events.
    const filter = {
      tenant: taskActorOf(actor).tenant,
      taskId: query.taskId,
      action: query.action,
    };
    const added = this.closing ? undefined : this.fanout.add(sink, filter, clientIdentity(request));
    if (typeof added === 'string') {
      const { httpAdapter } = this.adapterHost;
      httpAdapter.setHeader(response, 'Retry-After', String(RETRY_AFTER_S));
      httpAdapter.reply(
        response,
        {
          statusCode: HttpStatus.TOO_MANY_REQUESTS,
          error: 'Too Many Requests',
          message:
            added === 'global'
              ? 'too many open event streams on this server; try again later'
              : 'too many open event streams for this client; close one first',
        },
        HttpStatus.TOO_MANY_REQUESTS,
      );
      return;
    }
    // Headers set earlier by middleware (security headers, CORS) stay on the stream.
    const headers: Record<string, string | number | string[]> = {};
    if ('raw' in response) {
      response.hijack();
      for (const [name, value] of Object.entries(response.getHeaders())) {
        if (value !== undefined) headers[name] = value;
      }
    }
    raw.writeHead(HttpStatus.OK, {
      ...headers,
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    raw.flushHeaders();
    this.track(raw);
    if (!added) {
      raw.end(); // shutting down: the stream ends at once
      return;
    }
    if (this.fanout.size === 1) this.start();
    raw.once('close', () => {
      added();
      if (this.fanout.size === 0) this.stop();
    });
  }

  /**
   * Ends open streams, and waits until their responses are over, before the HTTP server closes:
   * a keep-alive connection whose response ends only after the server began closing is kept
   * until its idle timeout, which would hold `app.close()` up.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.closing = true;
    this.fanout.closeAll();
    this.stop();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.open),
      new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_WAIT_MS))),
    ]);
    clearTimeout(timer);
  }

  onModuleDestroy(): void {
    this.stop();
  }

  /** The first stream opened: listen to task events and send heartbeats. */
  private start(): void {
    this.unsubscribe = this.events.subscribe((event) => this.fanout.publish(event));
    this.heartbeat = setInterval(() => this.fanout.broadcast(': heartbeat\n\n'), SSE_HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** The last stream closed: nothing listens any more. */
  private stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
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
