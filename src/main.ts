import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createApp } from './bootstrap';
import { ConfigError, loadConfig } from './config/app.config';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      // One line naming the variable, no stack: this is the operator's mistake, not a bug.
      console.error(`taskq: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
  const app = await createApp(config);
  await app.listen(config.port, config.host);
  new Logger('taskq').log(
    `listening on ${await app.getUrl()} (role ${config.role}, driver ${config.queue.driver}, ${config.httpAdapter}); docs at /docs`,
  );
}

main().catch((error: unknown) => {
  console.error('taskq: start-up failed:', error);
  process.exit(1);
});
