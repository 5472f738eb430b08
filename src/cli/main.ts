#!/usr/bin/env node
import { ApiError } from './client';
import { buildProgram } from './program';

/** `npx taskq …` (package.json `bin`): errors as one line, exit code 1. */
buildProgram({
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
})
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    const hint =
      error instanceof ApiError && (error.status === 401 || error.status === 403)
        ? ' (set --api-key or TASKQ_API_KEY)'
        : '';
    process.stderr.write(`taskq: ${(error as Error).message}${hint}\n`);
    process.exitCode = 1;
  });
