import { Inject } from '@nestjs/common';
import { APP_CONFIG } from './config.constants';

/** Injects the typed {@link AppConfig} parsed at boot. */
export const InjectAppConfig = (): ParameterDecorator => Inject(APP_CONFIG);
