/**
 * A device nobody hears: whichever deadline ends the search (the attempt's, or rediscoveryTimeoutMs),
 * the attempt failed because the device was not found, and escalation treats it as notFound.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionFailedError } from '../../src/bluez/errors.js';
import { establishConnection } from '../../src/connection/establish.js';
import { scenarioOptions, startWorld, type World } from './harness.js';

let world: World | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

const UNKNOWN = '11:22:33:44:55:66';

describe('an unknown device', () => {
  it('the attempt deadline ends the search: every attempt is notFound, no Connect was sent, discovery stopped', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [] });
    const err = await establishConnection(
      scenarioOptions(world, {
        address: UNKNOWN,
        maxAttempts: 2,
        attemptTimeoutMs: 300,
        rediscoveryTimeoutMs: 10_000,
      }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionFailedError);
    const failed = err as ConnectionFailedError;
    expect(failed.errorClass).toBe('notFound');
    expect(failed.attempts.map((a) => [a.errorClass, a.code])).toEqual([
      ['notFound', 'DEVICE_NOT_FOUND'],
      ['notFound', 'DEVICE_NOT_FOUND'],
    ]);
    expect(world.env.sim.calls.filter((c) => c.member === 'Connect')).toEqual([]);
    const bluez = world.bluez;
    await expect.poll(() => bluez.adapters().some((a) => a.discovering), { timeout: 5000 }).toBe(false);
  });

  it('rediscoveryTimeoutMs ends the search: notFound as well', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [] });
    const err = await establishConnection(
      scenarioOptions(world, {
        address: UNKNOWN,
        maxAttempts: 1,
        attemptTimeoutMs: 10_000,
        rediscoveryTimeoutMs: 300,
      }),
    ).catch((e: unknown) => e);
    expect((err as ConnectionFailedError).attempts.map((a) => [a.errorClass, a.code])).toEqual([
      ['notFound', 'DEVICE_NOT_FOUND'],
    ]);
  });
});
