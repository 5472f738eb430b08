import {
  type ArgumentsHost,
  BadRequestException,
  Catch,
  HttpException,
  type HttpServer,
  InternalServerErrorException,
  Logger,
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

/**
 * Gives request-body errors the same JSON answer on both HTTP adapters, and any error no other
 * filter took the shared error body (`{statusCode, error, message}`, as documented) instead of
 * Nest's `{statusCode: 500, message}`; its stack goes to the log, not to the client.
 */
@Catch()
export class InvalidJsonFilter extends BaseExceptionFilter {
  private readonly logger = new Logger('taskq');

  constructor(
    adapter: HttpServer,
    private readonly maxBodyBytes: number,
  ) {
    super(adapter);
  }

  override catch(error: unknown, host: ArgumentsHost): void {
    if (error instanceof HttpException)
      return super.catch(normalise(error, this.maxBodyBytes), host);
    this.logger.error('request failed', (error as Error)?.stack ?? String(error));
    super.catch(
      new InternalServerErrorException({
        statusCode: 500,
        error: 'Internal Server Error',
        message: 'the request failed on the server; the service log has the details',
      }),
      host,
    );
  }
}
