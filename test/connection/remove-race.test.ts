/**
 * bluetoothd 5.66 answers RemoveDevice before it emits InterfacesRemoved (the simulator does the
 * same). The actors that remove a device and then wait for it to reappear must not take the
 * not-yet-removed object for the rediscovered one, even behind a client whose RemoveDevice
 * resolves on the reply alone.
 */
import dbus from 'dbus-next';
import { afterEach, describe, expect, it } from 'vitest';
import type { BluezClient } from '../../src/bluez/client-types.js';
import { connectionActorFunctions } from '../../src/actors/connection-actors.js';
import { LeaseBook } from '../../src/actors/lease-book.js';
import type { MirrorChange } from '../../src/bluez/mirror.js';
import { DEVICE, bms, startWorld, type World } from './harness.js';

const DEVICE_PATH = `/org/bluez/hci0/dev_${DEVICE.replaceAll(':', '_')}`;

let world: World | undefined;
let rawBus: dbus.MessageBus | undefined;
afterEach(async () => {
  rawBus?.disconnect();
  rawBus = undefined;
  await world?.stop();
  world = undefined;
});

/** The client, except that RemoveDevice resolves when bluetoothd replies (no wait for the signal). */
async function replyOnlyRemoveDevice(w: World): Promise<BluezClient> {
  rawBus = dbus.sessionBus({ busAddress: w.env.address });
  const bus = rawBus;
  const removeDevice = async (adapter: string, address: string): Promise<void> => {
    const obj = await bus.getProxyObject('org.bluez', `/org/bluez/${adapter}`);
    const adapter1 = obj.getInterface('org.bluez.Adapter1');
    const call = adapter1['RemoveDevice'] as (path: string) => Promise<void>;
    await call.call(adapter1, `/org/bluez/${adapter}/dev_${address.replaceAll(':', '_')}`);
  };
  return new Proxy(w.bluez, {
    get(target, key) {
      if (key === 'removeDevice') return removeDevice;
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function recordDeviceChanges(w: World): { changes: string[]; off: () => void } {
  const changes: string[] = [];
  const off = w.bluez.mirror.on('change', (c: MirrorChange) => {
    if (c.path === DEVICE_PATH && c.type !== 'propertiesChanged') changes.push(c.type);
  });
  return { changes, off };
}

describe('RemoveDevice reply before InterfacesRemoved', () => {
  it('clearing the device cache waits for the device to go before it waits for it to come back', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms(['hci0'])] });
    const bluez = await replyOnlyRemoveDevice(world);
    const fns = connectionActorFunctions({
      bluez,
      lateGattDelaysMs: [],
      disconnectTimeoutMs: 2000,
      rediscoveryTimeoutMs: 5000,
      leases: new LeaseBook(),
    });
    const { changes, off } = recordDeviceChanges(world);
    await fns.clearDeviceCache({ adapter: 'hci0', address: DEVICE }, AbortSignal.timeout(10_000));
    off();
    // Removed, then discovered again: the device the next Connect uses is the fresh object.
    expect(changes).toEqual(['interfacesRemoved', 'interfacesAdded']);
    expect(world.bluez.device('hci0', DEVICE)).toBeDefined();
    expect(world.bluez.mirror.pendingWaits).toBe(0);
  }, 30_000);

  it('a phantom removed by RemoveDevice is waited out before it counts as reappeared', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms(['hci0'])] });
    const bluez = await replyOnlyRemoveDevice(world);
    world.env.sim.inject({ kind: 'phantom', target: { device: DEVICE, adapter: 'hci0' } });
    const deadline = AbortSignal.timeout(10_000);
    await world.bluez.mirror.waitFor(() => world?.bluez.isPhantom('hci0', DEVICE), { signal: deadline });
    // verifiedDisconnect is the client's own (it waits); only a bare RemoveDevice could race, so
    // force the removal path through a client whose verifiedDisconnect reports 'removed' at the reply.
    const racing = new Proxy(bluez, {
      get(target, key) {
        if (key === 'verifiedDisconnect') {
          return async (adapter: string, address: string) => {
            await target.removeDevice(adapter, address);
            return 'removed' as const;
          };
        }
        return Reflect.get(target, key, target);
      },
    });
    const phantomFns = connectionActorFunctions({
      bluez: racing,
      lateGattDelaysMs: [],
      disconnectTimeoutMs: 500,
      rediscoveryTimeoutMs: 5000,
      leases: new LeaseBook(),
    });
    const { changes, off } = recordDeviceChanges(world);
    // The machine's phantom steps, in its order: removing → awaiting-removal → rediscovering.
    const target = { adapter: 'hci0', address: DEVICE };
    await phantomFns.removePhantom(target, deadline);
    await phantomFns.awaitDeviceGone(target, deadline);
    const out = await phantomFns.rediscoverDevice(target, deadline);
    off();
    expect(out).toEqual({ reappeared: true });
    expect(changes).toEqual(['interfacesRemoved', 'interfacesAdded']);
    expect(world.bluez.mirror.pendingWaits).toBe(0);
  }, 30_000);
});
