import { connect } from 'amqplib';
import { AmqpQueueDriver } from '../../src/queue/drivers/amqp/amqp.driver';
import { RABBITMQ_SERVICE, describeWithService } from '../helpers/service-available';
import { describeQueueDriverConformance } from '../../src/queue/testing';

const URL = 'amqp://guest:guest@127.0.0.1:5672';
const created = new Set<string>();

/**
 * Remembers the queues each driver declared, to delete them when the file is done. `stats`
 * declares the queues it counts, so a queue only ever asked about is remembered too.
 */
class TrackedAmqpDriver extends AmqpQueueDriver {
  override async ensureQueue(queue: string): Promise<void> {
    created.add(queue);
    return super.ensureQueue(queue);
  }

  override stats(queue: string): ReturnType<AmqpQueueDriver['stats']> {
    created.add(queue);
    return super.stats(queue);
  }
}

describeWithService(RABBITMQ_SERVICE, 'amqp conformance', () => {
  afterAll(async () => {
    const model = await connect(URL);
    const channel = await model.createChannel();
    for (const queue of created) {
      const delays = [100, 500, 70000].map((ms) => `${queue}.delay.${ms}`);
      for (const name of [queue, `${queue}.dead`, ...delays]) {
        await channel.deleteQueue(name);
      }
    }
    await model.close();
  });

  describeQueueDriverConformance('amqp', () =>
    Promise.resolve(new TrackedAmqpDriver({ url: URL })),
  );
});
