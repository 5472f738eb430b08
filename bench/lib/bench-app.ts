import 'reflect-metadata';
import {
  Controller,
  type DynamicModule,
  HttpCode,
  HttpStatus,
  type INestApplication,
  Injectable,
  Module,
  Post,
} from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { DataSource, type Repository } from 'typeorm';
import { AppModule } from '../../src/app.module';
import { createApp } from '../../src/bootstrap';
import { type BootConfig, loadAppConfig } from '../../src/app.config.loader';
import { QUEUE_DRIVER, QueueConsumerService, type QueueDriver } from '../../src/queue';
import { TaskHandler } from '../../src/handlers';
import { TaskEntity, TaskStatements } from '../../src/persistence';
import { newTask, TasksService } from '../../src/tasks';
import { TaskProcessor } from '../../src/worker';

/** Bench-only handler state: when each `noop` task's handler started, by its `seq`. */
export const handlerStarts = new Map<number, number>();
export const recordStarts = { enabled: false };

/** A handler that does nothing, so the pipeline around it is what gets measured. */
@Injectable()
export class BenchHandlers {
  @TaskHandler('noop')
  noop(data: { seq?: number }): { ok: true } {
    if (recordStarts.enabled && typeof data.seq === 'number') {
      handlerStarts.set(data.seq, performance.now());
    }
    return { ok: true };
  }
}

/** The floor for POST /tasks: the same app, pipes and filters, answering 202 with no work. */
@Controller('bench')
export class BenchBareController {
  @Post('bare')
  @HttpCode(HttpStatus.ACCEPTED)
  bare(): { id: string; status: string } {
    return { id: '00000000-0000-4000-8000-000000000000', status: 'queued' };
  }
}

@Module({ providers: [BenchHandlers], controllers: [BenchBareController] })
export class BenchModule {}

/**
 * Builds the real application through `createApp` (same adapter set-up, pipes, filters) with the
 * bench module added. createApp takes no extra modules, so AppModule.forRoot is wrapped for the
 * duration of the call: the composed module is the service's own plus BenchModule.
 */
export async function createBenchApp(env: Record<string, string>): Promise<BenchApp> {
  // The shell's environment passes through (broker URLs, tuning); `env` overrides it.
  const config = loadAppConfig({ ...process.env, LOG_LEVEL: 'warn', ...env });
  const original = AppModule.forRoot.bind(AppModule);
  AppModule.forRoot = (cfg: BootConfig): DynamicModule => {
    const module = original(cfg);
    return { ...module, imports: [...(module.imports ?? []), BenchModule] };
  };
  try {
    return new BenchApp(await createApp(config), config);
  } finally {
    AppModule.forRoot = original;
  }
}

export class BenchApp {
  readonly tasks: TasksService;
  readonly driver: QueueDriver;
  readonly repo: Repository<TaskEntity>;
  readonly consumers: QueueConsumerService;
  readonly processor: TaskProcessor;
  readonly store: TaskStatements;

  constructor(
    readonly app: INestApplication,
    readonly config: BootConfig,
  ) {
    this.tasks = app.get(TasksService);
    this.driver = app.get<QueueDriver>(QUEUE_DRIVER);
    this.repo = app.get(DataSource).getRepository(TaskEntity);
    this.consumers = app.get(QueueConsumerService);
    this.processor = app.get(TaskProcessor);
    this.store = app.get(TaskStatements);
  }

  get queue(): string {
    return this.config.queue.name;
  }

  /** Tasks whose outcome the worker pools recorded (process resolved, then acked). */
  succeeded(): number {
    return this.consumers.stats().reduce((total, pool) => total + pool.succeeded, 0);
  }

  /** A queued task row as TasksService.create builds it, for bulk loading. */
  row(action: string, data: Record<string, unknown>): TaskEntity {
    return newTask({ action, data, queue: this.queue, maxAttempts: this.config.task.maxAttempts });
  }

  /**
   * Pre-loads a backlog fast (set-up, not measured): TaskStatements.insert (one transaction), then
   * TasksService.publish sends the messages in one driver call. No validation, no depth check.
   */
  async bulkEnqueue(rows: TaskEntity[]): Promise<void> {
    await this.store.insert(rows);
    await this.tasks.publish(rows);
  }

  async close(): Promise<void> {
    await this.app.close();
  }
}
