import {
  type Attributes,
  INVALID_SPAN_CONTEXT,
  context,
  type Context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';

/**
 * OpenTelemetry for taskq. The code below calls only the API: with no SDK started (the default)
 * every call is a no-op. `startTracing` starts the SDK when OTEL_EXPORTER_OTLP_ENDPOINT is set.
 */
const TRACER = 'taskq';
/** Whether startTracing ran in this process: spans are only made then. */
let started = false;
const NO_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

export function tracingStarted(): boolean {
  return started;
}

/**
 * Starts the SDK: W3C trace context, async-hooks context, and spans exported over OTLP/HTTP to
 * `endpoint` (or to `spanProcessors`, which tests use with an in-memory exporter). Only traces:
 * taskq's metrics are Prometheus and its logs are stdout. The standard OTEL_* variables
 * (OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, headers) apply.
 */
export function startTracing(options: {
  endpoint?: string;
  spanProcessors?: SpanProcessor[];
  exporter?: SpanExporter;
}): NodeSDK {
  const sdk = new NodeSDK({
    serviceName: process.env.OTEL_SERVICE_NAME ?? 'taskq',
    ...(options.spanProcessors
      ? { spanProcessors: options.spanProcessors }
      : { traceExporter: options.exporter ?? new OTLPTraceExporter() }),
    instrumentations: [],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  started = true;
  return sdk;
}

/** The active trace context as message headers (`traceparent`, `tracestate`); empty if none. */
export function traceHeaders(): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier;
}

/**
 * Runs `work` in a new span (active inside it), ends it when `work` settles, and records a
 * rejection as the span's error. `parent` defaults to the active context.
 */
export async function inSpan<T>(
  name: string,
  options: { kind: SpanKind; attributes?: Attributes; parent?: Context; linkParent?: boolean },
  work: (span: Span) => Promise<T>,
): Promise<T> {
  // Tracing off (the default): no span, no context switch, on every task and request.
  if (!started) return work(NO_SPAN);
  const parent = options.parent ?? context.active();
  const parentSpan = trace.getSpanContext(parent);
  const span = trace.getTracer(TRACER).startSpan(
    name,
    {
      kind: options.kind,
      attributes: options.attributes,
      // A consumer span names the producer's span as a link too (OTel messaging conventions).
      links: options.linkParent && parentSpan ? [{ context: parentSpan }] : [],
    },
    parent,
  );
  try {
    return await context.with(trace.setSpan(parent, span), () => work(span));
  } catch (error) {
    span.recordException(error as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
    throw error;
  } finally {
    span.end();
  }
}

/** The context a message's headers carry (its producer's span), or the root context. */
export function messageContext(headers: Readonly<Record<string, string>>): Context {
  return propagation.extract(ROOT_CONTEXT, headers);
}

export { SpanKind };
