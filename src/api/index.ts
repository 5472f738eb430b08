export * from './api.module';
export * from './dto';
