/**
 * Every rejection of establishConnection is a library error listing its attempts, and a call that
 * rejects leaves no link in BlueZ: the teardown's disconnect is retried (bounded) when both the
 * Disconnect and its RemoveDevice fallback fail, and the mirror agrees with BlueZ afterwards.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionFailedError } from '../../src/bluez/errors.js';
import { establishConnection } from '../../src/connection/establish.js';
import { busyDeviceLocks } from '../../src/actors/device-lock.js';
import { DEVICE, bms, deviceCalls, scenarioOptions, simDevice, startWorld, type World } from './harness.js';

let world: World | undefined;

afterEach(async () => {
  await world?.stop();
  world = undefined;
  expect(busyDeviceLocks()).toEqual([]);
});

describe('establishConnection rejects typed, with attempts, and leaves no link behind', () => {
  it('a BlueZ with no adapters: ConnectionFailedError whose attempt names the adapter error', async () => {
    world = await startWorld({ adapters: [], devices: [] });
    const err = await establishConnection({ address: DEVICE, bluez: world.bluez }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionFailedError);
    const failed = err as ConnectionFailedError;
    expect(failed.attempts).toHaveLength(1);
    expect(failed.attempts[0]).toMatchObject({ attempt: 1, code: 'ADAPTER_ERROR', errorClass: 'other' });
    expect(failed.device).toBe(DEVICE);
    expect(failed.message).toMatch(/no adapters/);
  });

  it('validation fails and the teardown Disconnect and RemoveDevice both hang once: the disconnect is tried again and BlueZ holds no link', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }],
      devices: [bms(['hci0'])],
      faults: [
        {
          kind: 'hang',
          target: { device: DEVICE },
          interface: 'org.bluez.Device1',
          member: 'Disconnect',
          count: 1,
        },
        {
          kind: 'hang',
          target: { adapter: 'hci0' },
          interface: 'org.bluez.Adapter1',
          member: 'RemoveDevice',
          count: 1,
        },
      ],
    });
    const options = scenarioOptions(world, {
      maxAttempts: 1,
      disconnectTimeoutMs: 300,
      lateGattDelaysMs: [],
      validate: () => false,
    });
    const err = await establishConnection(options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionFailedError);
    expect((err as ConnectionFailedError).attempts.map((a) => a.errorClass)).toEqual(['validation']);
    // The first teardown: Disconnect hung, RemoveDevice hung; the second: Disconnect.
    expect(deviceCalls(world, 'hci0').filter((c) => c !== 'StartDiscovery' && c !== 'StopDiscovery')).toEqual(
      ['Connect', 'Disconnect', 'RemoveDevice', 'Disconnect'],
    );
    expect(simDevice(world, 'hci0')?.connected).toBe(false);
    expect(world.bluez.device('hci0', DEVICE)?.connected ?? false).toBe(false);
  });
});
