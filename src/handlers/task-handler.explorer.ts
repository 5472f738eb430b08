import { Injectable, Logger, OnModuleInit, type Type } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { QueueDriverRegistry } from '../queue';
import { DuplicateTaskHandlerError } from './errors/duplicate-task-handler.error';
import { InvalidTaskHandlerError } from './errors/invalid-task-handler.error';
import type { TaskHandlerFn } from './task-context.interface';
import {
  FALLBACK_ACTION,
  TASK_HANDLER_METADATA,
  type TaskHandlerMetadata,
} from './task-handler.decorator';

export interface RegisteredTaskHandler extends TaskHandlerMetadata {
  /** `Class.method`, for logs and errors. */
  label: string;
  fn: TaskHandlerFn;
}

/**
 * Finds every `@TaskHandler` method on every provider at module init. No list of handlers is
 * kept by hand; a duplicate action or a handler on a request-scoped provider fails the boot.
 */
@Injectable()
export class TaskHandlerExplorer implements OnModuleInit {
  private readonly logger = new Logger(TaskHandlerExplorer.name);
  private readonly handlers = new Map<string, RegisteredTaskHandler>();

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    private readonly queues: QueueDriverRegistry,
  ) {}

  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const instance: unknown = wrapper.instance;
      const metatype = wrapper.metatype;
      if (!instance || typeof instance !== 'object' || !metatype) continue;
      const prototype = Object.getPrototypeOf(instance) as object;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const fn = (prototype as Record<string, unknown>)[method] as TaskHandlerFn;
        const meta: TaskHandlerMetadata | undefined = this.reflector.get(TASK_HANDLER_METADATA, fn);
        if (!meta) continue;
        const label = `${(metatype as Type).name}.${method}`;
        if (!wrapper.isDependencyTreeStatic()) {
          throw new InvalidTaskHandlerError(
            `${label}: task handlers must live on singleton providers, not request- or transient-scoped ones`,
          );
        }
        this.register({ ...meta, label, fn: fn.bind(instance) });
      }
    }
  }

  /** Adds a handler; throws DuplicateTaskHandlerError if its action is taken. */
  register(handler: RegisteredTaskHandler): void {
    const existing = this.handlers.get(handler.action);
    if (existing)
      throw new DuplicateTaskHandlerError(handler.action, existing.label, handler.label);
    // A queue named by a handler exists from boot, in every role, so publishing never fails.
    if (handler.queue) this.queues.declareQueue(handler.queue);
    this.handlers.set(handler.action, handler);
    this.logger.log(
      `${handler.label} handles "${handler.action}"${handler.queue ? ` on queue ${handler.queue}` : ''}`,
    );
  }

  /** The handler for `action`, else the fallback, else undefined. */
  resolve(action: string): RegisteredTaskHandler | undefined {
    return this.handlers.get(action) ?? this.handlers.get(FALLBACK_ACTION);
  }

  /** Every registered handler, in action order. */
  list(): RegisteredTaskHandler[] {
    return [...this.handlers.values()].sort((a, b) => a.action.localeCompare(b.action));
  }

  /** Actions with a handler of their own (the fallback excluded), sorted. */
  actions(): string[] {
    return [...this.handlers.keys()].filter((a) => a !== FALLBACK_ACTION).sort();
  }
}
