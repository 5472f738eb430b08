import { Injectable, type OnModuleDestroy } from '@nestjs/common';

/**
 * Whether this process is shutting down. `main.ts` flips it the moment SIGTERM arrives, before
 * consumers drain, so readiness answers 503 and a load balancer stops sending first; a close
 * started some other way (tests, `app.close()`) flips it with the first shutdown hook.
 */
@Injectable()
export class ShutdownState implements OnModuleDestroy {
  private since?: number;

  begin(): void {
    this.since ??= Date.now();
  }

  get shuttingDown(): boolean {
    return this.since !== undefined;
  }

  onModuleDestroy(): void {
    this.begin();
  }
}
