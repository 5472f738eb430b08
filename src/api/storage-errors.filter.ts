import {
  type ArgumentsHost,
  Catch,
  type ExceptionFilter,
  HttpStatus,
  Logger,
  type HttpServer,
} from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { RepeatLog } from '../common/repeat-log';
import { storageFault } from '../common/storage-errors';

/** Seconds a client is asked to wait before trying again when the store cannot write. */
export const STORAGE_RETRY_AFTER_S = 5;

/**
 * The store's faults (a full disk, a lost or vanished database) are not the client's: they
 * answer 503 with Retry-After and the cause, on both adapters, and are logged once per interval
 * with a count instead of a stack per request.
 *
 * Catches everything: Nest hands an error to one global filter only (the first whose @Catch
 * matches), so every other error goes on to `next` (the shared error body), not to Nest's default.
 */
@Catch()
export class StorageErrorsFilter extends BaseExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('Storage');
  private readonly repeats = new RepeatLog((line) => this.logger.error(line));

  constructor(
    private readonly adapter: HttpServer,
    private readonly next?: ExceptionFilter,
  ) {
    super(adapter);
  }

  override catch(error: unknown, host: ArgumentsHost): void {
    const fault = storageFault(error);
    if (!fault || host.getType() !== 'http') {
      if (this.next) void this.next.catch(error, host);
      else super.catch(error, host);
      return;
    }
    const reason = error instanceof Error ? error.message : String(error);
    this.repeats.report(`${fault}: ${reason}`, `${fault}: ${reason}`);
    const response: unknown = host.switchToHttp().getResponse();
    this.adapter.setHeader(response, 'Retry-After', String(STORAGE_RETRY_AFTER_S));
    this.adapter.reply(
      response,
      {
        statusCode: HttpStatus.SERVICE_UNAVAILABLE,
        error: 'Service Unavailable',
        message: `${fault}: the task database cannot serve this request now; retry later`,
      },
      HttpStatus.SERVICE_UNAVAILABLE,
    );
  }
}
