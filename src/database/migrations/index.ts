import { CreateTasks1763900000000 } from './1763900000000-CreateTasks';

/**
 * Every migration, oldest first. Listed explicitly (not globbed) so the same list works from
 * `dist/`, from ts-node and from Jest. Add a generated migration here.
 */
export const migrations = [CreateTasks1763900000000];
