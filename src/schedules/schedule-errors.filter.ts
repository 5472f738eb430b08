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
import { QueueFullError } from '../tasks/errors/queue-full.error';
import { UnknownActionError } from '../tasks/errors/unknown-action.error';
import {
  InvalidScheduleError,
  ScheduleExistsError,
  ScheduleNotFoundError,
  ScheduleStateError,
} from './schedule.errors';

/** Maps the schedules domain's errors (and the task errors a trigger can meet) to HTTP. */
@Catch(
  InvalidScheduleError,
  ScheduleExistsError,
  ScheduleNotFoundError,
  ScheduleStateError,
  UnknownActionError,
  IdempotencyConflictError,
  QueueFullError,
)
export class ScheduleErrorsFilter extends BaseExceptionFilter implements ExceptionFilter {
  override catch(error: Error, host: ArgumentsHost): void {
    super.catch(toHttp(error), host);
  }
}

function toHttp(error: Error): HttpException {
  if (error instanceof InvalidScheduleError) return new BadRequestException(error.messages);
  if (error instanceof UnknownActionError)
    return new BadRequestException([`action: ${error.message}`]);
  if (error instanceof ScheduleNotFoundError) return new NotFoundException(error.message);
  if (error instanceof QueueFullError) {
    return new HttpException(
      { statusCode: 429, error: 'Too Many Requests', message: error.message },
      HttpStatus.TOO_MANY_REQUESTS,
    );
  }
  return new ConflictException(error.message);
}
