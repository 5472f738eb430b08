export * from './callback-dispatcher.service';
export * from './callback-signature';
export * from './callback-url';
export * from './callbacks.module';
