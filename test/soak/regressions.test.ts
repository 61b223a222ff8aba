/**
 * Defects the randomized soak found (test/soak/harness.ts), each as a focused scenario on the
 * simulator with the soak seed that found it in its name.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { connectionActorImplementations } from '../../src/actors/connection-actors.js';
import { LeaseBook } from '../../src/actors/lease-book.js';
import { findDevice } from '../../src/discovery/find-device.js';
import { establishConnection } from '../../src/connection/establish.js';
import { BluezError } from '../../src/bluez/errors.js';
import { busyDeviceLocks } from '../../src/actors/device-lock.js';
import { bms, eventually, startWorld, trackTimers, type World } from '../connection/harness.js';

let world: World | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

const UNKNOWN = 'AA:BB:CC:DD:EE:42';

describe('defects found by the soak', () => {
  it('a search whose discovery cannot start on any adapter ends its mirror wait with it: no timer or listener left for timeoutMs (soak seed 7, path 65)', async () => {
    // hci0 is off, so StartDiscovery fails with NotReady on every adapter of the search.
    world = await startWorld({ adapters: [{ name: 'hci0', powered: false }], devices: [] });
    const { bluez } = world;
    const listeners = bluez.mirror.totalListenerCount();
    const timers = trackTimers();
    let pending: string[];
    try {
      await expect(
        findDevice(bluez, ['hci0'], UNKNOWN, { timeoutMs: 30_000, signal: new AbortController().signal }),
      ).rejects.toMatchObject({ dbusName: 'org.bluez.Error.NotReady' });
      expect(bluez.mirror.totalListenerCount()).toBe(listeners);
    } finally {
      pending = timers.stop();
    }
    expect(pending.filter((t) => t.startsWith('30000 ms'))).toEqual([]);
  });

  it('an adapter unplugged while establishConnection looks for the device: the call connects on the adapter left or fails typed, never with a TypeError about its own adapter list (soak seed 8, path 10)', async () => {
    // The device is in range of hci1 only and in no cache, so establishConnection searches both.
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [{ ...bms([]), inRange: ['hci1'] }],
    });
    const { bluez, env } = world;
    // hci0 is unplugged the moment our search has started discovery on hci1, before the device is heard.
    let unplugged = false;
    const off = bluez.mirror.on('change', () => {
      if (!unplugged && bluez.adapters().find((a) => a.name === 'hci1')?.discovering === true) {
        unplugged = true;
        env.sim.inject({ kind: 'remove-adapter', target: { adapter: 'hci0' } });
      }
    });
    try {
      const outcome = await establishConnection({
        bluez,
        address: bms().address,
        attemptTimeoutMs: 4000,
        rediscoveryTimeoutMs: 4000,
        disconnectTimeoutMs: 1000,
      }).then(
        (c) => ({ connected: c }),
        (error: unknown) => ({ error }),
      );
      expect(unplugged).toBe(true);
      if ('error' in outcome) expect(outcome.error).toBeInstanceOf(BluezError);
      else {
        expect(outcome.connected.adapter).toBe('hci1');
        await outcome.connected.disconnect();
      }
    } finally {
      off();
    }
    expect(busyDeviceLocks()).toEqual([]);
  });
});

describe('simulator defects found by the soak', () => {
  it('an adapter unplugged and plugged back while a StartDiscovery is pending: the call fails NotReady and no scan runs on the old adapter (soak seed 11: the simulator threw "object … already exported" from a scan tick)', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [bms(['hci0'])],
      timing: { gattMs: 200 },
    });
    const { bluez, env } = world;
    // StartDiscovery is pending while the controller "reports discovery started" (gattMs); the
    // adapter leaves and comes back within that time.
    const pending = bluez.startDiscovery('hci0', { timeoutMs: 3000 });
    pending.catch(() => {});
    await eventually('StartDiscovery received on hci0', () =>
      env.sim.calls.some((c) => c.member === 'StartDiscovery' && c.path === '/org/bluez/hci0'),
    );
    const unplug = env.sim.inject({ kind: 'remove-adapter', target: { adapter: 'hci0' } });
    unplug.clear();
    await expect(pending).rejects.toMatchObject({ dbusName: 'org.bluez.Error.NotReady' });
    // Several advertising intervals later the simulator is still consistent and nobody scans on hci0.
    await new Promise((r) => setTimeout(r, 100));
    const hci0 = env.sim.state().adapters.find((a) => a.name === 'hci0');
    expect(hci0?.discovering).toBe(false);
    expect(hci0?.devices.map((d) => d.address)).toEqual([bms().address]);
  });
});

describe('links left behind, found by the soak', () => {
  it('a connect cancelled while its Connect is pending, the cancelling Disconnect hangs and the Connect completes: the link is still torn down, nothing left in BlueZ (soak seed 381178259, path 99)', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms(['hci0'])] });
    const { bluez, env } = world;
    // The Connect takes 300 ms; the first Disconnect is swallowed, so it cannot cancel the Connect.
    env.sim.inject({ kind: 'connect-latency', target: { device: bms().address }, ms: 300 });
    env.sim.inject({
      kind: 'hang',
      target: { device: bms().address },
      interface: 'org.bluez.Device1',
      member: 'Disconnect',
      count: 1,
    });
    const ac = new AbortController();
    const connecting = establishConnection({
      bluez,
      address: bms().address,
      adapters: ['hci0'],
      signal: ac.signal,
      attemptTimeoutMs: 4000,
      disconnectTimeoutMs: 400,
    });
    await eventually('Connect pending in bluetoothd', () =>
      env.sim.calls.some((c) => c.member === 'Connect' && c.repliedAt === undefined),
    );
    ac.abort();
    await expect(connecting).rejects.toMatchObject({ name: 'AbortError' });
    const device = env.sim.state().adapters[0]?.devices.find((d) => d.address === bms().address);
    expect(device?.connected ?? false).toBe(false);
    expect(busyDeviceLocks()).toEqual([]);
  });
  /**
   * The cancel arrives while the Connect is pending; the Disconnect meant to cancel it hangs past
   * disconnectTimeoutMs, so bluetoothd goes on connecting. The teardown saw no link yet and used to
   * report the link down at once; the Connect then completed with nobody holding the link.
   */
  async function cancelWhileConnectPending(connectMs: number, disconnectHangs: number): Promise<void> {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms(['hci0'])] });
    const { bluez, env } = world;
    env.sim.inject({ kind: 'connect-latency', target: { device: bms().address }, ms: connectMs });
    env.sim.inject({
      kind: 'hang',
      target: { device: bms().address },
      interface: 'org.bluez.Device1',
      member: 'Disconnect',
      count: disconnectHangs,
    });
    const listeners = bluez.mirror.totalListenerCount();
    const ac = new AbortController();
    const connecting = establishConnection({
      bluez,
      address: bms().address,
      adapters: ['hci0'],
      signal: ac.signal,
      attemptTimeoutMs: 4000,
      disconnectTimeoutMs: 100,
    });
    await eventually('Connect pending in bluetoothd', () =>
      env.sim.calls.some((c) => c.member === 'Connect' && c.repliedAt === undefined),
    );
    ac.abort();
    await expect(connecting).rejects.toMatchObject({ name: 'AbortError' });
    // Whatever the abandoned Connect does, it has done it by now, and no link is left up.
    await eventually('the abandoned Connect answered', () =>
      env.sim.calls.every((c) => c.member !== 'Connect' || c.repliedAt !== undefined),
    );
    await new Promise((r) => setTimeout(r, 50));
    const device = env.sim.state().adapters[0]?.devices.find((d) => d.address === bms().address);
    expect(device?.connected ?? false).toBe(false);
    expect(bluez.mirror.totalListenerCount()).toBe(listeners);
    expect(busyDeviceLocks()).toEqual([]);
  }

  it('a connect cancelled while its Connect is pending, the cancelling Disconnect hangs past disconnectTimeoutMs and the Connect then succeeds: the teardown waits for that reply and takes the link down (soak seed 517752859, paths 422 and 2335)', async () => {
    // Disconnect swallowed (100 ms), then the Connect replies at 150 ms, during the wait for it.
    await cancelWhileConnectPending(150, 1);
  });

  it('a connect cancelled while its Connect is pending, the cancelling Disconnect hangs and the Connect is still pending after the bounded wait: the teardown sends Disconnect again, which cancels it, and leaves no link (soak seed 517752859, path 422)', async () => {
    // The Connect would take 600 ms; the second try's Disconnect reaches bluetoothd and cancels it.
    await cancelWhileConnectPending(600, 1);
  });

  it('a connect cancelled while its Connect is pending, and every Disconnect hangs: the Connect that completes is torn down by RemoveDevice, no link left (soak seed 517752859, path 2335)', async () => {
    await cancelWhileConnectPending(250, 10);
  });
});

describe('locks left behind, found by the soak', () => {
  it('a lock acquisition stopped between granting the device lock and XState relaying it (CANCEL, the pool stopping its child) gives the lease back: no device lock outlives it (soak seed 778090754, path 216: "pool leases held after every disconnect", 3 of 40 replays)', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms(['hci0'])] });
    const leases = new LeaseBook();
    const { actors } = connectionActorImplementations({
      bluez: world.bluez,
      leases,
      lateGattDelaysMs: [],
      disconnectTimeoutMs: 1000,
      rediscoveryTimeoutMs: 1000,
    });
    const input = { address: bms().address, adapter: 'hci0', lease: null };
    // Stop the invoke after 0, 1, 2, … microtasks: every moment from "waiting for the lock" to
    // "result relayed" is hit once. A result that was relayed belongs to the machine (released here
    // as the machine would); any other moment must leave no lease behind.
    const stoppedWithLeaseLeft: number[] = [];
    for (let ticks = 0; ticks < 30; ticks += 1) {
      const invoke = createActor(actors.acquireDeviceLock, { input });
      invoke.start();
      for (let i = 0; i < ticks; i += 1) await Promise.resolve();
      const snapshot = invoke.getSnapshot();
      invoke.stop();
      if (snapshot.status === 'done' && snapshot.output !== undefined) leases.release(snapshot.output.lease);
      await new Promise((r) => setTimeout(r, 0));
      if (leases.size > 0) {
        stoppedWithLeaseLeft.push(ticks);
        leases.releaseAll();
      }
    }
    expect(stoppedWithLeaseLeft).toEqual([]);
    expect(busyDeviceLocks()).toEqual([]);
  });
});
