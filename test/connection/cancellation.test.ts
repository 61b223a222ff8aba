/**
 * Cancellation is real (SPEC §2; the original swallowed it, defect B5): overallTimeoutMs and an
 * AbortSignal end the actor at once with TimeoutError/AbortError, through `disconnecting` on the
 * adapter in use, and leave nothing behind: no link in bluetoothd, no lock, no wait, no listener,
 * no timer.
 */
import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { busyDeviceLocks, lockDevice } from '../../src/actors/device-lock.js';
import { createConnectionActor, establishConnection } from '../../src/connection/establish.js';
import {
  DEVICE,
  bms,
  deviceCalls,
  eventually,
  scenarioOptions,
  simDevice,
  startWorld,
  trackTimers,
  type World,
} from './harness.js';

let world: World | undefined;

afterEach(async () => {
  await world?.stop();
  world = undefined;
});

/** Lets pending microtasks and zero-delay timers run. */
const settle = () => new Promise((r) => setTimeout(r, 50));

describe('cancellation against the simulator', () => {
  it('overallTimeoutMs ends a slow connect at once with TimeoutError; bluetoothd is not left connecting or connected', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [bms(['hci0', 'hci1'])],
    });
    world.env.sim.inject({ kind: 'connect-latency', target: { device: DEVICE }, ms: 60_000 });
    const timers = trackTimers();
    const options = scenarioOptions(world, {
      adapters: ['hci1'],
      overallTimeoutMs: 300,
      attemptTimeoutMs: 30_000,
    });
    const startedAt = Date.now();
    const error = await establishConnection(options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DOMException);
    expect((error as DOMException).name).toBe('TimeoutError');
    expect(Date.now() - startedAt).toBeLessThan(10_000); // well before the 30 s attempt deadline
    expect(options.trail.states).toEqual([
      'idle',
      'locking',
      'clearing-stale',
      'connecting',
      'disconnecting',
      'failed',
    ]);
    // The pending Connect was cancelled with a Disconnect on hci1, the adapter in use.
    expect(deviceCalls(world, 'hci1')).toEqual(['Connect!Failed', 'Disconnect']);
    expect(deviceCalls(world, 'hci0')).toEqual([]);
    expect(simDevice(world, 'hci1')).toMatchObject({ connected: false, connecting: false });
    expect(busyDeviceLocks()).toEqual([]);
    expect(world.bluez.mirror.pendingWaits).toBe(0);
    // The 30 s attempt deadline, the overall timer, mirror waits, call deadlines: all gone.
    await settle();
    expect(timers.stop()).toEqual([]);
  });

  it('an AbortSignal during validation ends with AbortError and the established link is disconnected', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.inject({ kind: 'late-gatt', target: { device: DEVICE }, ms: 60_000 });
    const controller = new AbortController();
    const timers = trackTimers();
    const options = scenarioOptions(world, { signal: controller.signal, lateGattDelaysMs: [30_000] });
    const pending = establishConnection(options).catch((e: unknown) => e);
    await eventually('validating', () => options.trail.states.includes('validating'));
    expect(simDevice(world, 'hci0')?.connected).toBe(true);
    controller.abort();
    const error = await pending;
    expect((error as Error).name).toBe('AbortError');
    expect(options.trail.states).toEqual([
      'idle',
      'locking',
      'clearing-stale',
      'connecting',
      'validating',
      'disconnecting',
      'failed',
    ]);
    expect(simDevice(world, 'hci0')?.connected).toBe(false);
    expect(busyDeviceLocks()).toEqual([]);
    expect(world.bluez.mirror.pendingWaits).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    // The 30 s late-GATT wait and every call deadline are gone.
    await settle();
    expect(timers.stop()).toEqual([]);
  });

  it('an AbortSignal while waiting for the device lock fails at once and touches nothing', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.inject({ kind: 'connect-latency', target: { device: DEVICE }, ms: 1500 });
    const holder = scenarioOptions(world);
    const first = establishConnection(holder);
    await eventually('first caller connecting', () => holder.trail.states.includes('connecting'));
    const controller = new AbortController();
    const waiter = scenarioOptions(world, { signal: controller.signal });
    const second = establishConnection(waiter).catch((e: unknown) => e);
    await eventually('second caller waiting for the lock', () => waiter.trail.states.includes('locking'));
    controller.abort();
    expect(((await second) as Error).name).toBe('AbortError');
    expect(waiter.trail.states).toEqual(['idle', 'locking', 'failed']);
    // The first caller's connect was not disturbed.
    const conn = await first;
    expect(holder.trail.states.at(-1)).toBe('connected');
    expect(deviceCalls(world, 'hci0')).toEqual(['Connect']);
    await conn.disconnect();
    expect(busyDeviceLocks()).toEqual([]);
  });

  it('a connection actor stopped while waiting for the device lock leaves the mutex free, however late the lock arrives', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    // The lock is handed over a few microtasks after the holder releases it; the actor is stopped
    // at each point of that hand-over in turn (before, during, after the grant reaches it).
    for (let hops = 0; hops <= 12; hops += 1) {
      const releaseHolder = await lockDevice(DEVICE);
      const options = scenarioOptions(world);
      const actor = createConnectionActor({ ...options, bluez: world.bluez });
      actor.send({ type: 'CONNECT' });
      await eventually('waiting for the lock', () => options.trail.states.includes('locking'));
      releaseHolder();
      for (let i = 0; i < hops; i += 1) await Promise.resolve();
      actor.stop();
      await settle();
      expect({ hops, busy: busyDeviceLocks() }).toEqual({ hops, busy: [] });
    }
  });

  it('an already aborted signal rejects before any D-Bus traffic', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.clearCalls();
    const error = await establishConnection(scenarioOptions(world, { signal: AbortSignal.abort() })).catch(
      (e: unknown) => e,
    );
    expect((error as Error).name).toBe('AbortError');
    expect(world.env.sim.calls).toEqual([]);
  });

  it('stopping the actor from outside in backoff releases the device lock', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.inject({ kind: 'rf-abort', target: { device: DEVICE }, count: 5 });
    const options = scenarioOptions(world, { backoffMs: { aborted: 60_000 } });
    const actor = createConnectionActor({ ...options, bluez: world.bluez });
    actor.send({ type: 'CONNECT' });
    await eventually('backoff', () => options.trail.states.includes('backoff'));
    expect(busyDeviceLocks()).toEqual([DEVICE]);
    actor.stop();
    expect(busyDeviceLocks()).toEqual([]);
  });
});

describe('bad input', () => {
  it('is rejected with the field named, before any D-Bus traffic', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.clearCalls();
    const base = scenarioOptions(world);
    await expect(establishConnection({ ...base, address: 'AA:BB' })).rejects.toThrow(
      /address must be a MAC address/,
    );
    await expect(establishConnection({ ...base, maxAttempts: 0 })).rejects.toThrow(RangeError);
    await expect(establishConnection({ ...base, attemptTimeoutMs: Number.NaN })).rejects.toThrow(
      /attemptTimeoutMs/,
    );
    await expect(establishConnection({ ...base, overallTimeoutMs: -1 })).rejects.toThrow(/overallTimeoutMs/);
    await expect(establishConnection({ ...base, adapters: ['usb0'] })).rejects.toThrow(/adapters\[0\]/);
    await expect(establishConnection({ ...base, adapters: ['hci9'] })).rejects.toThrow(
      /adapters\[0\] "hci9" is not an adapter BlueZ knows/,
    );
    await expect(establishConnection({ ...base, escalation: 'turbo' as never })).rejects.toThrow(
      /escalation must be one of/,
    );
    await expect(establishConnection({ ...base, backoffMs: { weird: 1 } as never })).rejects.toThrow(
      /backoffMs\.weird/,
    );
    await expect(establishConnection({ ...base, validate: 'yes' as never })).rejects.toThrow(
      /validate must be a function/,
    );
    await expect(establishConnection({ ...base, slotsPerAdapter: 0 })).rejects.toThrow(
      /slotsPerAdapter must be an integer >= 1/,
    );
    await expect(establishConnection({ ...base, lateGattDelaysMs: [100, -5] })).rejects.toThrow(
      /lateGattDelaysMs\[1\]/,
    );
    expect(world.env.sim.calls.filter((c) => c.interface.startsWith('org.bluez'))).toEqual([]);
  });
});
