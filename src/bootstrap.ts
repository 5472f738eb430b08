import { BadRequestException, type INestApplication, Logger, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { ExpressAdapter, type NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { SwaggerModule } from '@nestjs/swagger';
import fastifyHelmet from '@fastify/helmet';
import helmet from 'helmet';
import { Logger as PinoNestLogger } from 'nestjs-pino';
import { markRoute, recordHttpDurations } from './observability/http-metrics';
import { requestId } from './observability/logging';
import { TaskMetrics } from './observability/metrics';
import type { BootConfig } from './app.config.loader';
import { AppModule } from './app.module';
import { INVALID_JSON_MESSAGE, InvalidJsonFilter } from './api/invalid-json.filter';
import { RequestBodyPipe } from './api/request-body.pipe';
import { buildOpenApiDocument } from './api/openapi';
import { isUnsupportedBody, UNSUPPORTED_MEDIA_TYPE_BODY } from './api/content-type';
import { StorageErrorsFilter } from './api/storage-errors.filter';
import { prepareDatabaseFile } from './persistence/database-file';

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
  // Its lines wait for the application's logger (pino, JSON in production) to be in place.
  const early: { level: 'log' | 'warn'; message: string }[] = [];
  await prepareDatabaseFile(config, {
    log: (message) => early.push({ level: 'log', message }),
    warn: (message) => early.push({ level: 'warn', message }),
  });
  // Largest accepted request body (MAX_BODY_BYTES), the same on both adapters.
  const bodyLimit = config.input.maxBodyBytes;
  const adapter =
    config.httpAdapter === 'fastify'
      ? new FastifyAdapter({
          bodyLimit,
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
  const databaseLog = new Logger('Database');
  for (const { level, message } of early) databaseLog[level](message);
  // Every request gets its id (and the X-Request-Id header) first, whichever adapter serves it.
  (app.getHttpServer() as Server).prependListener('request', requestId);
  if (config.observability.metricsEnabled) {
    recordHttpDurations(app.getHttpServer() as Server, app.get(TaskMetrics));
  }
  await useSecurityHeaders(app, config);
  if (config.httpAdapter === 'fastify') {
    // An empty JSON body reads as `{}`, as on express, so both answer it with the same 400.
    const fastify = (app as NestFastifyApplication).getHttpAdapter().getInstance();
    fastify.addHook('onRequest', (request, reply, done) => {
      // The matched route's template for the request-duration metric (express keeps req.route).
      markRoute(request.raw, request.routeOptions.url);
      if (isUnsupportedBody(request.headers))
        void reply.code(415).send(UNSUPPORTED_MEDIA_TYPE_BODY);
      else done();
    });
    fastify.addContentTypeParser(
      'application/json',
      { parseAs: 'string', bodyLimit },
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
    const express = app as NestExpressApplication;
    // Before the body parsers, which would read a form-encoded body as an object.
    express.use((request: IncomingMessage, response: ServerResponse, next: () => void) => {
      if (!isUnsupportedBody(request.headers)) return next();
      response.writeHead(415, { 'content-type': 'application/json; charset=utf-8' });
      response.end(JSON.stringify(UNSUPPORTED_MEDIA_TYPE_BODY));
    });
    // Non-strict like fastify's parser, so `null` or `"x"` get the same answer on both adapters.
    express.useBodyParser('json', { strict: false, limit: bodyLimit });
  }
  app.useGlobalPipes(new RequestBodyPipe(config.input));
  // One global filter: storage faults answer 503, everything else the shared error body.
  app.useGlobalFilters(
    new StorageErrorsFilter(
      app.getHttpAdapter(),
      new InvalidJsonFilter(app.getHttpAdapter(), bodyLimit),
    ),
  );

  // A worker serves only /health: no public API, so no API documentation either.
  if (config.role !== 'worker') {
    const document = buildOpenApiDocument(app);
    SwaggerModule.setup('docs', app, document, { swaggerOptions: { persistAuthorization: true } });
  }
  await app.init();
  if (config.httpAdapter === 'fastify') {
    await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
  }
  return app;
}

/**
 * Security headers on both adapters (helmet's defaults: nosniff, frame denial, HSTS, a CSP that
 * Swagger UI's own files satisfy, ...), no `X-Powered-By`, and CORS only for CORS_ORIGINS
 * (off by default: a browser page elsewhere cannot read the API).
 */
async function useSecurityHeaders(app: INestApplication, config: BootConfig): Promise<void> {
  if (config.httpAdapter === 'fastify') {
    await (app as NestFastifyApplication).register(fastifyHelmet);
  } else {
    const express = app as NestExpressApplication;
    express.disable('x-powered-by');
    express.use(helmet());
  }
  if (config.corsOrigins.length > 0) {
    app.enableCors({
      origin: config.corsOrigins.includes('*') ? '*' : config.corsOrigins,
      exposedHeaders: ['Retry-After'],
    });
  }
}
