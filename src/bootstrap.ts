import {
  BadRequestException,
  type INestApplication,
  type Type,
  ValidationPipe,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { IncomingMessage, Server } from 'node:http';
import { ExpressAdapter, type NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Logger as PinoNestLogger } from 'nestjs-pino';
import { markRoute, recordHttpDurations } from './observability/http-metrics';
import { requestId } from './observability/logging';
import { TaskMetrics } from './observability/metrics';
import type { BootConfig } from './app.config.loader';
import { AppModule } from './app.module';
import { INVALID_JSON_MESSAGE, InvalidJsonFilter } from './api/invalid-json.filter';
import { JsonObjectBodyPipe } from './api/json-object-body.pipe';

/** Largest accepted request body, the same on both adapters. */
const BODY_LIMIT = 1024 * 1024;

/**
 * Builds the Nest application on the configured HTTP adapter. The only place that knows which
 * adapter runs; everything else is adapter-neutral. Used by `main.ts` and by the e2e tests.
 */
export async function createApp(
  config: BootConfig,
  extraModules: Type[] = [],
): Promise<INestApplication> {
  const adapter =
    config.httpAdapter === 'fastify'
      ? new FastifyAdapter({
          bodyLimit: BODY_LIMIT,
          genReqId: (req: IncomingMessage) => requestId(req),
        })
      : new ExpressAdapter();
  const app = await NestFactory.create(AppModule.forRoot(config, extraModules), adapter, {
    // Held until pino (nestjs-pino, configured by LOG_LEVEL) takes over just below.
    bufferLogs: true,
    abortOnError: false,
    // On fastify taskq registers its own JSON parser below; express keeps Nest's body-parser.
    bodyParser: config.httpAdapter === 'express',
  });
  app.useLogger(app.get(PinoNestLogger));
  // Every request gets its id (and the X-Request-Id header) first, whichever adapter serves it.
  (app.getHttpServer() as Server).prependListener('request', requestId);
  if (config.observability.metricsEnabled) {
    recordHttpDurations(app.getHttpServer() as Server, app.get(TaskMetrics));
  }
  if (config.httpAdapter === 'fastify') {
    // An empty JSON body reads as `{}`, as on express, so both answer it with the same 400.
    const fastify = (app as NestFastifyApplication).getHttpAdapter().getInstance();
    // The matched route's template for the request-duration metric (express keeps req.route).
    fastify.addHook('onRequest', (request, _reply, done) => {
      markRoute(request.raw, request.routeOptions.url);
      done();
    });
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
  app.useGlobalFilters(new InvalidJsonFilter(app.getHttpAdapter()));

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
