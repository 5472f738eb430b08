import { checkUrlOption, defineDriver } from '../driver-kind';
import { AmqpQueueDriver, type AmqpDriverOptions } from './amqp.driver';

export const amqpDriver = defineDriver({
  kind: 'amqp',
  optionKeys: ['url'],
  envOptions: (env) => ({ url: env.amqp.url }),
  validateOptions: (options, fail) => {
    checkUrlOption(options, ['amqp:', 'amqps:'], fail);
    return options;
  },
  create: (options, logger) =>
    new AmqpQueueDriver({ ...(options as Partial<AmqpDriverOptions>), logger }),
});
