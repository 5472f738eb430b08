import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { addAuthSchemes } from '../auth/openapi';
import type {
  CallbacksObject,
  OperationObject,
  ParameterObject,
  ReferenceObject,
  ResponseObject,
  SchemaObject,
} from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';
import { ErrorResponseDto } from './dto/error.response.dto';

/** The version the document states: the package's. */
const API_VERSION = '0.1.0';

const TAGS: Record<string, string> = {
  tasks: 'Submit tasks, read their status and result, cancel, retry, and stream their changes.',
  queues: 'Queue counts, consumers, pause and resume.',
  schedules: 'Tasks submitted on a cron expression or a fixed period.',
  health: 'Whether this process and its database and brokers are up.',
};

const ERROR_REF = { $ref: `#/components/schemas/${ErrorResponseDto.name}` };

/** The answers any operation may give besides its own, by when they apply. */
const REASONS: Record<string, string> = {
  '400': 'A bad parameter or body field; `message` names each one.',
  '413': 'The request body is larger than MAX_BODY_BYTES (default 1 MiB).',
  '415': 'The request has a body whose Content-Type is not application/json.',
  '429': 'Too many requests or tasks waiting; retry after `Retry-After` seconds.',
  '500': 'An unexpected failure (the database or a broker); the service log has the details.',
};

/** The request a worker makes to a task's `callbackUrl` when the task ends. */
const RESULT_CALLBACK: CallbacksObject = {
  taskEnded: {
    '{$request.body#/callbackUrl}': {
      post: {
        summary: "The task's JSON, POSTed to its callbackUrl when it ends",
        description:
          'Sent once the task is completed, failed or cancelled. Any 2xx answer delivers it; ' +
          'other answers, timeouts (CALLBACK_TIMEOUT_MS) and network errors are retried with ' +
          'backoff (TASK_BACKOFF_MS, capped at TASK_BACKOFF_MAX_MS) up to CALLBACK_MAX_ATTEMPTS.',
        operationId: 'taskEndedCallback',
        tags: ['tasks'],
        parameters: [
          {
            name: 'X-Taskq-Task-Id',
            in: 'header' as const,
            required: true,
            description: "The task's id.",
            schema: { type: 'string', format: 'uuid' },
          },
          {
            name: 'X-Taskq-Signature',
            in: 'header' as const,
            required: false,
            description:
              '`sha256=` and the hex HMAC-SHA256 of the raw body with CALLBACK_SECRET as key; ' +
              'absent when CALLBACK_SECRET is not set.',
            schema: { type: 'string', pattern: '^sha256=[0-9a-f]{64}$' },
          },
        ],
        requestBody: {
          required: true,
          content: {
            'application/json': { schema: { $ref: '#/components/schemas/TaskResponseDto' } },
          },
        },
        responses: {
          '2XX': { description: 'Delivered: the task shows `callback.status: delivered`.' },
        },
      },
    },
  },
};

/**
 * The OpenAPI document served at /docs-json and exported by `npm run openapi`. Nest builds it
 * from the controllers' decorators; the rules every operation shares are applied here once, so
 * no route can forget them:
 *
 * - every error answer (4xx, 5xx) carries the one error schema, `{statusCode, error, message}`;
 * - an operation with a body can answer 400, 413 and 415; one with parameters 400; any 500;
 * - a 429 states its `Retry-After` header;
 * - a nullable reference (`nullable` beside `allOf: [$ref]`, which OpenAPI 3.0 validators read
 *   as "must be an object") is replaced by the referenced object, nullable;
 * - tags in use are declared, and an operation without a description gets its summary's.
 */
export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const document = SwaggerModule.createDocument(
    app,
    addAuthSchemes(new DocumentBuilder())
      .setTitle('taskq')
      .setDescription(
        'Queue tasks for background workers; every task, status and result is kept in SQL. ' +
          'Errors are always `{statusCode, error, message}`; request bodies are JSON ' +
          '(`Content-Type: application/json`).',
      )
      .setVersion(API_VERSION)
      .setLicense('MIT', 'https://opensource.org/licenses/MIT')
      .setContact('taskq maintainers', 'http://localhost:8080/docs', '')
      .addServer('http://localhost:8080', 'A local taskq on its default port (PORT=8080)')
      .build(),
    { extraModels: [ErrorResponseDto] },
  );
  return strictify(document);
}

/** Applies the shared rules above to a document Nest built. Exported for tests. */
export function strictify(document: OpenAPIObject): OpenAPIObject {
  const schemas = (document.components?.schemas ?? {}) as Record<string, SchemaObject>;
  if (document.info.contact) delete document.info.contact.email;
  const used = new Set<string>();
  for (const item of Object.values(document.paths)) {
    for (const method of ['get', 'put', 'post', 'delete', 'patch'] as const) {
      const operation = item[method];
      if (!operation) continue;
      addSharedAnswers(operation);
      operation.description ??= `${operation.summary ?? ''}.`;
      for (const tag of operation.tags ?? []) used.add(tag);
    }
  }
  const create = document.paths['/tasks']?.post;
  if (create) create.callbacks = RESULT_CALLBACK;
  for (const schema of Object.values(schemas)) inlineNullableRefs(schema, schemas);
  dropUnusedSchemas(document, schemas);
  document.tags = [...used].sort().map((name) => ({
    name,
    description: TAGS[name] ?? `The ${name} endpoints.`,
  }));
  return document;
}

function addSharedAnswers(operation: OperationObject): void {
  const responses = operation.responses as Record<string, ResponseObject>;
  const add = (status: string): void => {
    responses[status] ??= { description: REASONS[status] };
  };
  if (operation.requestBody) ['400', '413', '415'].forEach(add);
  const parameters = (operation.parameters ?? []) as ParameterObject[];
  if (parameters.some((p) => p.in === 'query' || p.in === 'header')) add('400');
  add('500');
  for (const [status, response] of Object.entries(responses)) {
    if (Number(status) < 400) continue;
    response.content ??= { 'application/json': { schema: ERROR_REF } };
    if (status === '429') {
      response.headers = {
        'Retry-After': {
          description: 'Seconds to wait before trying again.',
          schema: { type: 'integer', minimum: 0 },
        },
        ...response.headers,
      };
    }
  }
}

/** `{nullable, allOf: [{$ref: X}]}` → X's own object schema with `nullable: true`. */
function inlineNullableRefs(schema: SchemaObject, schemas: Record<string, SchemaObject>): void {
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const p = property as SchemaObject;
    const ref = (p.allOf?.[0] as ReferenceObject | undefined)?.$ref;
    if (!p.nullable || p.allOf?.length !== 1 || !ref) continue;
    const target = schemas[ref.split('/').pop()!];
    schema.properties![name] = {
      ...structuredClone(target),
      nullable: true,
      ...(p.description ? { description: p.description } : {}),
    };
  }
}

/** Schemas no longer referenced (after inlining) would make linters warn. */
function dropUnusedSchemas(document: OpenAPIObject, schemas: Record<string, SchemaObject>): void {
  for (;;) {
    const text = JSON.stringify({ ...document, components: { ...document.components } });
    const unused = Object.keys(schemas).filter((name) => {
      const refs = text.split(`"#/components/schemas/${name}"`).length - 1;
      return refs === 0;
    });
    if (unused.length === 0) return;
    for (const name of unused) delete schemas[name];
  }
}
