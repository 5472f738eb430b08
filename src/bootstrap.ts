import {
  BadRequestException,
  type INestApplication,
  Logger,
  type LogLevel,
  type Type,
  ValidationPipe,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter, type NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { BootConfig } from './app.config.loader';
import { AppModule } from './app.module';
import { INVALID_JSON_MESSAGE, InvalidJsonFilter } from './api/invalid-json.filter';
import { JsonObjectBodyPipe } from './api/json-object-body.pipe';
import { StorageErrorsFilter } from './api/storage-errors.filter';
import { prepareDatabaseFile } from './persistence/database-file';

/** Largest accepted request body, the same on both adapters. */
const BODY_LIMIT = 1024 * 1024;

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/**
 * Builds the Nest application on the configured HTTP adapter. The only place that knows which
 * adapter runs; everything else is adapter-neutral. Used by `main.ts` and by the e2e tests.
 */
export async function createApp(
  config: BootConfig,
  extraModules: Type[] = [],
): Promise<INestApplication> {
  // Before any module opens the SQLite file (the sqlite driver does so while it is constructed),
  // so a missing, unreadable or corrupt file is reported by its path and setting.
  await prepareDatabaseFile(config, new Logger('Database'));
  const adapter =
    config.httpAdapter === 'fastify'
      ? new FastifyAdapter({ bodyLimit: BODY_LIMIT })
      : new ExpressAdapter();
  const app = await NestFactory.create(AppModule.forRoot(config, extraModules), adapter, {
    logger: LEVELS.slice(0, LEVELS.indexOf(config.logLevel) + 1),
    abortOnError: false,
    // On fastify taskq registers its own JSON parser below; express keeps Nest's body-parser.
    bodyParser: config.httpAdapter === 'express',
  });
  if (config.httpAdapter === 'fastify') {
    // An empty JSON body reads as `{}`, as on express, so both answer it with the same 400.
    const fastify = (app as NestFastifyApplication).getHttpAdapter().getInstance();
    fastify.addContentTypeParser(
      'application/json',
      { parseAs: 'string', bodyLimit: BODY_LIMIT },
      (_req, body, done) => {
        if (body === '') return done(null, {});
        try {
          done(null, JSON.parse(body as string));
        } catch {
          done(new BadRequestException(INVALID_JSON_MESSAGE), undefined);
        }
      },
    );
  } else {
    // Non-strict like fastify's parser, so `null` or `"x"` get the same answer on both adapters.
    (app as NestExpressApplication).useBodyParser('json', { strict: false, limit: BODY_LIMIT });
  }
  app.useGlobalPipes(
    new JsonObjectBodyPipe(),
    new ValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      forbidUnknownValues: true,
    }),
  );
  app.useGlobalFilters(
    // First: it catches everything, and Nest tries the last-registered global filter first.
    new StorageErrorsFilter(app.getHttpAdapter()),
    new InvalidJsonFilter(app.getHttpAdapter()),
  );

  // A worker serves only /health: no public API, so no API documentation either.
  if (config.role !== 'worker') {
    const document = SwaggerModule.createDocument(
      app,
      new DocumentBuilder()
        .setTitle('taskq')
        .setDescription(
          'Queue tasks for background workers; every task, status and result kept in SQL.',
        )
        .setVersion('0.1.0')
        .build(),
    );
    SwaggerModule.setup('docs', app, document);
  }
  await app.init();
  if (config.httpAdapter === 'fastify') {
    await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
  }
  return app;
}
