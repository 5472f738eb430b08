export const APP_CONFIG = Symbol('taskq:app_config');
