import { Controller, Get, Header } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The page's files, beside this module (scripts/build.js copies them into dist/dashboard/static). */
const STATIC_DIR = join(__dirname, 'static');

const read = (name: string): string => readFileSync(join(STATIC_DIR, name), 'utf8');

/**
 * `GET /dashboard`: a static page (HTML, one ES module, one stylesheet) that runs in the browser
 * and uses only the public HTTP API, with the API key the operator enters. Served by a controller
 * rather than a static-file plugin, so express and fastify serve it alike; read once at boot.
 */
@ApiExcludeController()
@Controller('dashboard')
export class DashboardController {
  private readonly html = read('index.html');
  private readonly script = read('app.js');
  private readonly style = read('style.css');

  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-cache')
  page(): string {
    return this.html;
  }

  @Get('app.js')
  @Header('Content-Type', 'text/javascript; charset=utf-8')
  @Header('Cache-Control', 'no-cache')
  app(): string {
    return this.script;
  }

  @Get('style.css')
  @Header('Content-Type', 'text/css; charset=utf-8')
  @Header('Cache-Control', 'no-cache')
  stylesheet(): string {
    return this.style;
  }
}
