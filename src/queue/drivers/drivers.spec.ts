import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DRIVER_KINDS, DRIVERS, type DriverKind, driverKindDefinition, isDriverKind } from '.';
import { MemoryQueueDriver } from './memory/memory.driver';
import { connectDriver, createDriver } from './driver.factory';

describe('driver registry', () => {
  it('lists every driver folder once, each with its definition', () => {
    const folders = readdirSync(__dirname).filter((entry) =>
      statSync(join(__dirname, entry)).isDirectory(),
    );
    expect(new Set(DRIVER_KINDS).size).toBe(DRIVERS.length);
    expect([...DRIVER_KINDS].sort()).toEqual(folders.sort());
    for (const kind of DRIVER_KINDS) {
      expect(readdirSync(join(__dirname, kind))).toContain(`${kind}.definition.ts`);
    }
  });

  it('derives the kinds from the definitions', () => {
    expect(DRIVER_KINDS).toEqual(DRIVERS.map((driver) => driver.kind));
    expect(DRIVER_KINDS).toEqual(['memory', 'sqlite', 'redis', 'amqp', 'postgres']);
    const kind: DriverKind = 'redis';
    // @ts-expect-error: a kind no definition has is not a DriverKind
    const unknown: DriverKind = 'kafka';
    expect(isDriverKind(kind)).toBe(true);
    expect(isDriverKind(unknown)).toBe(false);
    expect(driverKindDefinition('kafka')).toBeUndefined();
  });

  it('builds a driver of a listed kind', () => {
    expect(createDriver({ name: 'm', kind: 'memory' })).toBeInstanceOf(MemoryQueueDriver);
  });

  it('refuses an unknown kind, naming the driver and the known kinds', () => {
    expect(() => createDriver({ name: 'events', kind: 'kafka' as DriverKind })).toThrow(
      'driver events: unsupported kind kafka (known kinds: memory, sqlite, redis, amqp, postgres)',
    );
  });

  it('connects through the definition, or pings a driver that has no connect step', async () => {
    const driver = createDriver({ name: 'm', kind: 'memory' });
    const ping = jest.spyOn(driver, 'ping');
    await connectDriver(driver);
    expect(ping).toHaveBeenCalledTimes(1);
  });

  it('checks options only through keys a definition lists', () => {
    for (const definition of DRIVERS) {
      expect(new Set(definition.optionKeys).size).toBe(definition.optionKeys.length);
    }
  });
});
