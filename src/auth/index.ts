export * from './actor';
export * from './action-policy';
export * from './api-key.store';
export * from './auth.module';
export * from './require-scopes.decorator';
export * from './scopes';
export * from './may-submit';
