import { Module } from '@nestjs/common';
import { QueueConsumerService } from './queue-consumer.service';
import { QueueDriverRegistry } from './queue-driver.registry';
import { QueuePublisher } from './queue-publisher.service';
import { QUEUE_DRIVER } from './queue.constants';
import { QueueConfigurableModule } from './queue.module-definition';

/** Drivers, publisher and consumers. Knows nothing about tasks. */
@Module({
  providers: [
    QueueDriverRegistry,
    QueuePublisher,
    QueueConsumerService,
    {
      provide: QUEUE_DRIVER,
      inject: [QueueDriverRegistry],
      useFactory: (registry: QueueDriverRegistry) => registry.defaultDriver,
    },
  ],
  exports: [QueueDriverRegistry, QueuePublisher, QueueConsumerService, QUEUE_DRIVER],
})
export class QueueModule extends QueueConfigurableModule {}
