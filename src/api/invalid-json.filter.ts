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
  return withReason(error);
}

/**
 * An error answer in the shared shape `{statusCode, error, message}`: one thrown with a bare
 * message, or with `{statusCode, message}` only (e.g. the throttler's 429), gets its status's
 * reason phrase as `error`. Bodies of another shape (a health report) are left as they are.
 */
export function withReason(error: HttpException): HttpException {
  const status = error.getStatus();
  const body = error.getResponse();
  const reason = STATUS_REASONS[status] ?? 'Error';
  if (typeof body === 'string') {
    return new HttpException({ statusCode: status, error: reason, message: body }, status, {
      cause: error,
    });
  }
  const fields = body as Record<string, unknown>;
  if ('message' in fields && 'statusCode' in fields && !('error' in fields)) {
    return new HttpException({ ...fields, error: reason }, status, { cause: error });
  }
  return error;
}

const STATUS_REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

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
