import {
  type ArgumentsHost,
  BadRequestException,
  Catch,
  type ExceptionFilter,
  HttpException,
  NotFoundException,
} from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { InvalidTaskDataError } from './errors/invalid-task-data.error';
import { TaskNotFoundError } from './errors/task-not-found.error';
import { UnknownActionError } from './errors/unknown-action.error';

/** Maps the tasks domain's errors to HTTP answers; the service stays free of HTTP. */
@Catch(UnknownActionError, InvalidTaskDataError, TaskNotFoundError)
export class TaskErrorsFilter extends BaseExceptionFilter implements ExceptionFilter {
  override catch(error: Error, host: ArgumentsHost): void {
    super.catch(toHttp(error), host);
  }
}

function toHttp(error: Error): HttpException {
  if (error instanceof TaskNotFoundError) return new NotFoundException(error.message);
  if (error instanceof InvalidTaskDataError) return new BadRequestException(error.messages);
  return new BadRequestException(error.message);
}
