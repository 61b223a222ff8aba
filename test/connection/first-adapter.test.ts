/**
 * The first attempt goes to an adapter that can hear the device. Rotating away from a deaf adapter
 * only after a failed attempt costs that attempt's whole deadline (20 s by default).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { establishConnection, type ManagedConnection } from '../../src/connection/establish.js';
import { busyDeviceLocks } from '../../src/actors/device-lock.js';
import { DEVICE, bms, deviceCalls, scenarioOptions, startWorld, type World } from './harness.js';

let world: World | undefined;
const open: ManagedConnection[] = [];

afterEach(async () => {
  for (const c of open.splice(0)) await c.disconnect();
  await world?.stop();
  world = undefined;
  expect(busyDeviceLocks()).toEqual([]);
});

describe('first adapter for the first attempt', () => {
  it('a device only hci1 hears, unknown to BlueZ, connects on hci1 in the first attempt', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [{ ...bms([]), inRange: ['hci1'] }],
    });
    // An attempt deadline far above the discovery bound: a first attempt on hci0 would show as a
    // second attempt, whatever the machine's speed.
    const options = scenarioOptions(world, {
      adapters: ['hci0', 'hci1'],
      attemptTimeoutMs: 30_000,
      rediscoveryTimeoutMs: 10_000,
    });
    const conn = await establishConnection(options);
    open.push(conn);
    expect(conn.adapter).toBe('hci1');
    expect(conn.attempts).toMatchObject([{ number: 1, adapter: 'hci1', outcome: 'connected' }]);
    expect(deviceCalls(world, 'hci0').filter((c) => c.startsWith('Connect'))).toEqual([]);
    // Our discovery sessions are over on both adapters.
    expect(world.env.sim.state().adapters.map((a) => [a.name, a.discovering])).toEqual([
      ['hci0', false],
      ['hci1', false],
    ]);
  }, 60_000);

  it('a device BlueZ knows only on hci1 goes to hci1 first, without a scan', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [{ ...bms(['hci1']), inRange: ['hci1'] }],
    });
    world.env.sim.clearCalls();
    const options = scenarioOptions(world, { adapters: ['hci0', 'hci1'], attemptTimeoutMs: 30_000 });
    const conn = await establishConnection(options);
    open.push(conn);
    expect(conn.attempts).toMatchObject([{ number: 1, adapter: 'hci1', outcome: 'connected' }]);
    expect(deviceCalls(world)).toEqual(['Connect']);
  }, 60_000);

  it('the device with the stronger recent sighting goes first when both adapters know it', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [{ ...bms([]), rssiByAdapter: { hci0: -90, hci1: -45 } }],
    });
    // Let both adapters see it (RSSI only exists for a device heard while discovering).
    await world.bluez.startDiscovery('hci0');
    await world.bluez.startDiscovery('hci1');
    await world.bluez.mirror.waitFor(
      (m) => m.device('hci0', DEVICE)?.rssi !== undefined && m.device('hci1', DEVICE)?.rssi !== undefined,
      { timeoutMs: 10_000 },
    );
    // bluetoothd drops RSSI when discovery ends: connect while the sightings are recent.
    const conn = await establishConnection(scenarioOptions(world, { adapters: ['hci0', 'hci1'] }));
    open.push(conn);
    await world.bluez.stopDiscovery('hci0');
    await world.bluez.stopDiscovery('hci1');
    expect(conn.attempts).toMatchObject([{ number: 1, adapter: 'hci1', outcome: 'connected' }]);
  }, 60_000);

  it('looking for an unknown device is cancelled by the caller: AbortError, no discovery left running', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [{ ...bms([]), inRange: false }],
    });
    const controller = new AbortController();
    const pending = establishConnection(
      scenarioOptions(world, {
        adapters: ['hci0', 'hci1'],
        rediscoveryTimeoutMs: 60_000,
        signal: controller.signal,
      }),
    );
    await world.bluez.mirror.waitFor((m) => m.adapters().every((a) => a.discovering), { timeoutMs: 10_000 });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    expect(world.env.sim.state().adapters.map((a) => a.discovering)).toEqual([false, false]);
    expect(world.bluez.mirror.pendingWaits).toBe(0);
  }, 60_000);
});
