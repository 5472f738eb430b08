import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { QueueModuleOptions } from './interfaces/queue-module-options.interface';

export const {
  ConfigurableModuleClass: QueueConfigurableModule,
  MODULE_OPTIONS_TOKEN: QUEUE_MODULE_OPTIONS,
} = new ConfigurableModuleBuilder<QueueModuleOptions>()
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: true }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal,
  }))
  .build();
