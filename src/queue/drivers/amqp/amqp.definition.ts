import { checkUrlOption, defineDriver } from '../driver-kind';
import { AmqpQueueDriver, type AmqpDriverOptions } from './amqp.driver';

export const amqpDriver = defineDriver({
  kind: 'amqp',
  optionKeys: ['url', 'heartbeatSec'],
  envOptions: (env) => ({ url: env.amqp.url }),
  validateOptions: (options, fail) => {
    checkUrlOption(options, ['amqp:', 'amqps:'], fail);
    const heartbeat = options.heartbeatSec;
    if (
      heartbeat !== undefined &&
      (!Number.isInteger(heartbeat) || (heartbeat as number) < 0 || (heartbeat as number) > 600)
    ) {
      fail('heartbeatSec', 'expected an integer from 0 to 600');
    }
    return options;
  },
  create: (options, logger) =>
    new AmqpQueueDriver({ ...(options as Partial<AmqpDriverOptions>), logger }),
});
