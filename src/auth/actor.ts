/**
 * Who made a request: the API key that authenticated it. The guard (ApiKeyGuard) attaches it to
 * the request as `request.actor`; it is undefined in open mode (no key configured).
 */
export interface Actor {
  /** The key's name (never the key itself). */
  keyName: string;
  /** Every task this key creates belongs to this tenant; it sees only this tenant's tasks. */
  tenant: string;
  scopes: string[];
  /** Glob patterns (picomatch) of the actions this key may submit. */
  actions: string[];
}

/** A request as the guard leaves it. */
export interface RequestWithActor {
  actor?: Actor;
}

/** Who a task runs for, as recorded on its row and given to its handler as `ctx.actor`. */
export interface TaskActor {
  /** The key that created the task; null for tasks made in open mode. */
  keyName: string | null;
  tenant: string;
}

/** The tenant of open mode, of the scheduler's tasks, and of rows older than tenants. */
export const DEFAULT_TENANT = 'default';

/**
 * Key names of the scheduler's tasks: `schedule:<name>`. Key names cannot hold a colon, so no
 * API key can pass for one.
 */
export const SCHEDULE_ACTOR_PREFIX = 'schedule:';

/** The task owner for a request's actor: its key and tenant, or the open-mode default. */
export function taskActorOf(actor: Actor | undefined): TaskActor {
  return actor
    ? { keyName: actor.keyName, tenant: actor.tenant }
    : { keyName: null, tenant: DEFAULT_TENANT };
}
