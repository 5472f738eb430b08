// The README's client example: submit a task, wait for it with waitMs, read result.output.
import { createTaskqClient } from './src';

export async function example(baseUrl: string): Promise<string> {
  const taskq = createTaskqClient(baseUrl);

  const submitted = await taskq.POST('/tasks', {
    body: { action: 'uppercase', data: { text: 'hello world' } },
  });
  if (submitted.error) {
    // Typed: {statusCode, error, message}; message names each bad field.
    throw new Error(`refused (${submitted.error.statusCode}): ${String(submitted.error.message)}`);
  }

  const { data: task, error } = await taskq.GET('/tasks/{id}', {
    params: { path: { id: submitted.data.id }, query: { waitMs: 10_000 } },
  });
  if (error) throw new Error(`${error.statusCode} ${error.error}: ${String(error.message)}`);

  // result is a free-form object (null until the task completes).
  return `${task.status}: ${String(task.result?.output)}`;
}

if (require.main === module) {
  example(process.env.TASKQ_URL ?? 'http://localhost:8080').then(
    (line) => console.log(line), // completed: HELLO WORLD
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
