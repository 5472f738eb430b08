import { amqpDriver } from './amqp/amqp.definition';
import type { DriverKindDefinition } from './driver-kind';
import { memoryDriver } from './memory/memory.definition';
import { postgresDriver } from './postgres/postgres.definition';
import { redisDriver } from './redis/redis.definition';
import { sqliteDriver } from './sqlite/sqlite.definition';

export * from './driver-kind';

/**
 * Every driver taskq can build. Adding a driver is a folder with its definition and one line
 * here: QUEUE_DRIVER, topology files and the factory all read this list.
 */
export const DRIVERS = [
  memoryDriver,
  sqliteDriver,
  redisDriver,
  amqpDriver,
  postgresDriver,
] as const;

export type DriverKind = (typeof DRIVERS)[number]['kind'];

export const DRIVER_KINDS: readonly DriverKind[] = DRIVERS.map((driver) => driver.kind);

export function isDriverKind(kind: string): kind is DriverKind {
  return (DRIVER_KINDS as readonly string[]).includes(kind);
}

/** The definition of `kind`, or undefined for a kind no driver has. */
export function driverKindDefinition(kind: string): DriverKindDefinition<DriverKind> | undefined {
  return DRIVERS.find((driver) => driver.kind === kind);
}
