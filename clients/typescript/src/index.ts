import createClient, { type ClientOptions } from 'openapi-fetch';
import type { components, paths } from './schema';

export type { components, paths };

/** A task as the API shows it (`GET /tasks/{id}`). */
export type Task = components['schemas']['TaskResponseDto'];
/** Every error the API answers: `{statusCode, error, message}`. */
export type ApiError = components['schemas']['ErrorResponseDto'];

/**
 * A client for one taskq service, typed from its OpenAPI document: paths, parameters, bodies,
 * every answer's body (errors included) and the documented response headers.
 *
 * @example
 *   const taskq = createTaskqClient('http://localhost:8080');
 *   const { data, error } = await taskq.POST('/tasks', { body: { action: 'uppercase', data: { text: 'hi' } } });
 */
export function createTaskqClient(baseUrl: string, options: Omit<ClientOptions, 'baseUrl'> = {}) {
  return createClient<paths>({ ...options, baseUrl });
}

export type TaskqClient = ReturnType<typeof createTaskqClient>;
