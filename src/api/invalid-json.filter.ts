import {
  type ArgumentsHost,
  BadRequestException,
  Catch,
  HttpException,
  type HttpServer,
  PayloadTooLargeException,
} from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';

export const INVALID_JSON_MESSAGE = 'invalid JSON in request body: it could not be parsed';

/** Maps body-parser's (express) and fastify's body errors to one answer per kind. */
function normalise(error: HttpException, maxBodyBytes: number): HttpException {
  const { type, code } = (error.cause ?? {}) as { type?: unknown; code?: unknown };
  if (type === 'entity.parse.failed' || code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new BadRequestException(INVALID_JSON_MESSAGE);
  }
  if (type === 'entity.too.large' || code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new PayloadTooLargeException(
      `request body is larger than ${maxBodyBytes} bytes (MAX_BODY_BYTES)`,
    );
  }
  return error;
}

/** Gives request-body errors the same JSON answer on both HTTP adapters. */
@Catch(HttpException)
export class InvalidJsonFilter extends BaseExceptionFilter {
  constructor(
    adapter: HttpServer,
    private readonly maxBodyBytes: number,
  ) {
    super(adapter);
  }

  override catch(error: HttpException, host: ArgumentsHost): void {
    super.catch(normalise(error, this.maxBodyBytes), host);
  }
}
