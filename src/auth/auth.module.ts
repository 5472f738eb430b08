import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ApiKeyGuard } from './api-key.guard';
import { ApiKeyStore } from './api-key.store';

/**
 * API keys, scopes and the action policy (see README "Security"). Global: the guard covers every
 * controller, and the worker's processor asks the key set before running a task.
 */
@Global()
@Module({
  providers: [ApiKeyStore, { provide: APP_GUARD, useClass: ApiKeyGuard }],
  exports: [ApiKeyStore],
})
export class AuthModule {}
