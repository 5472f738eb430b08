import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { BuiltinHandlers } from './builtin.handlers';
import { TaskHandlerExplorer } from './task-handler.explorer';

/**
 * The handler registry: every `@TaskHandler` method of the application, found by discovery, and
 * the built-in handlers. Every role needs it: the API validates actions and picks their queue,
 * the worker runs them.
 */
@Module({
  imports: [DiscoveryModule],
  providers: [TaskHandlerExplorer, BuiltinHandlers],
  exports: [TaskHandlerExplorer],
})
export class HandlersModule {}
