export * from './app.config';
export * from './config.constants';
export * from './config.module';
export * from './inject-app-config.decorator';
