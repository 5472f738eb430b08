import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Observable } from 'rxjs';
import type { TaskMetrics } from './metrics';
import { SpanStatusCode } from '@opentelemetry/api';
import { inSpan, SpanKind, tracingStarted } from './tracing';

/** Where the matched route's template is left on the Node request, for the duration metric. */
const ROUTE = Symbol('taskq:route');
/** Requests that matched no route (404s, static files) share one label: no cardinality blow-up. */
export const UNMATCHED_ROUTE = 'unmatched';

type Marked = IncomingMessage & { [ROUTE]?: string };

/**
 * Marks each routed request with its route template (`/tasks/:id`, never the id itself), the
 * same on express and fastify: the template comes from the controller's metadata. With tracing
 * started, runs the route in a server span (`POST /tasks`) that ends when the response is sent.
 */
@Injectable()
export class RouteMarker implements NestInterceptor {
  private readonly templates = new WeakMap<object, string>();

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const http = context.switchToHttp();
    const request = http.getRequest<{ raw?: IncomingMessage }>();
    const raw = (request.raw ?? request) as Marked;
    const route = this.template(context);
    raw[ROUTE] = route;
    if (!tracingStarted()) return next.handle();
    const reply = http.getResponse<{ raw?: ServerResponse }>();
    const response = (reply.raw ?? reply) as ServerResponse;
    return new Observable((subscriber) => {
      void inSpan(
        `${raw.method} ${route}`,
        {
          kind: SpanKind.SERVER,
          attributes: { 'http.request.method': raw.method ?? 'GET', 'http.route': route },
        },
        (span) =>
          new Promise<void>((resolve) => {
            // The handler runs (and publishes) inside this span's context.
            next.handle().subscribe(subscriber);
            const finish = (): void => {
              span.setAttribute('http.response.status_code', response.statusCode);
              if (response.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
              resolve();
            };
            if (response.writableFinished) finish();
            else response.once('close', finish);
          }),
      );
    });
  }

  private template(context: ExecutionContext): string {
    const handler = context.getHandler();
    let template = this.templates.get(handler);
    if (template === undefined) {
      const parts = [context.getClass(), handler]
        .map(
          (target) => Reflect.getMetadata(PATH_METADATA, target) as string | string[] | undefined,
        )
        .map((path) => (Array.isArray(path) ? path[0] : path) ?? '')
        .flatMap((path) => path.split('/'))
        .filter((part) => part !== '');
      template = `/${parts.join('/')}`;
      this.templates.set(handler, template);
    }
    return template;
  }
}

/** Times every request the server answers, by method, route template and status. */
export function recordHttpDurations(server: Server, metrics: TaskMetrics): void {
  server.prependListener('request', (request: Marked, response: ServerResponse) => {
    const start = process.hrtime.bigint();
    response.once('finish', () => {
      metrics.httpDuration.observe(
        {
          method: request.method ?? 'GET',
          route: request[ROUTE] ?? UNMATCHED_ROUTE,
          status: String(response.statusCode),
        },
        Number(process.hrtime.bigint() - start) / 1e9,
      );
    });
  });
}
