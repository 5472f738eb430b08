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

type Marked = IncomingMessage & { [ROUTE]?: string; route?: { path?: unknown } };

/** Fastify's onRequest hook leaves the matched route's template here (bootstrap.ts). */
export function markRoute(request: IncomingMessage, template: string | undefined): void {
  if (template !== undefined) (request as Marked)[ROUTE] = template;
}

/** The route template: fastify's mark, or express's matched route; else `unmatched`. */
function routeOf(request: Marked): string {
  const marked = request[ROUTE];
  if (marked !== undefined) return marked;
  const path = request.route?.path;
  // Nest answers unknown paths on express through a catch-all route (`/{*path}`).
  return typeof path === 'string' && !path.includes('*') ? path : UNMATCHED_ROUTE;
}

/**
 * With tracing started (only then is it installed: an interceptor costs every request), runs
 * each route in a server span named by its template (`POST /tasks`, never an id; from the
 * controller's metadata, the same on express and fastify) that ends when the response is sent.
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
  // One child per label set, found by a string key: prom-client would hash the labels object
  // on every observation. Label sets are bounded (routes × methods × statuses).
  const children = new Map<string, { observe(value: number): void }>();
  server.prependListener('request', (request: Marked, response: ServerResponse) => {
    const start = performance.now();
    response.once('finish', () => {
      const method = request.method ?? 'GET';
      const route = routeOf(request);
      const status = response.statusCode;
      const key = `${method} ${status} ${route}`;
      let child = children.get(key);
      if (!child) {
        child = metrics.httpDuration.labels({ method, route, status: String(status) });
        children.set(key, child);
      }
      child.observe((performance.now() - start) / 1000);
    });
  });
}
