import {
  type ArgumentsHost,
  BadRequestException,
  Catch,
  ConflictException,
  type ExceptionFilter,
  HttpException,
  HttpStatus,
  NotFoundException,
} from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { IdempotencyConflictError } from '../tasks/errors/idempotency-conflict.error';
import { InvalidTaskRequestError } from '../tasks/errors/invalid-task-request.error';
import { QueueFullError } from '../tasks/errors/queue-full.error';
import { TaskNotFoundError } from '../tasks/errors/task-not-found.error';
import { TaskStateConflictError } from '../tasks/errors/task-state-conflict.error';
import { UnknownActionError } from '../tasks/errors/unknown-action.error';

/** Seconds a client is asked to wait when the queue is full. */
const RETRY_AFTER_S = 1;

/** Maps the tasks domain's errors to HTTP answers; the service stays free of HTTP. */
@Catch(
  UnknownActionError,
  InvalidTaskRequestError,
  TaskNotFoundError,
  TaskStateConflictError,
  IdempotencyConflictError,
  QueueFullError,
)
export class TaskErrorsFilter extends BaseExceptionFilter implements ExceptionFilter {
  override catch(error: Error, host: ArgumentsHost): void {
    if (error instanceof QueueFullError) {
      const response: unknown = host.switchToHttp().getResponse();
      this.httpAdapterHost?.httpAdapter.setHeader(response, 'Retry-After', String(RETRY_AFTER_S));
    }
    super.catch(toHttp(error), host);
  }
}

function toHttp(error: Error): HttpException {
  if (error instanceof TaskNotFoundError) return new NotFoundException(error.message);
  if (error instanceof InvalidTaskRequestError) return new BadRequestException(error.messages);
  if (error instanceof TaskStateConflictError || error instanceof IdempotencyConflictError) {
    return new ConflictException(error.message);
  }
  if (error instanceof QueueFullError) {
    return new HttpException(
      { statusCode: 429, error: 'Too Many Requests', message: error.message },
      HttpStatus.TOO_MANY_REQUESTS,
    );
  }
  return new BadRequestException(error.message);
}
