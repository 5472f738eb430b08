import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { loadConfig } from './src/config/app.config';
import { buildDataSourceOptions } from './src/persistence/data-source.options';

/** The DataSource the TypeORM CLI uses (`npm run migration:generate|run|revert`). */
export default new DataSource(buildDataSourceOptions(loadConfig()));
