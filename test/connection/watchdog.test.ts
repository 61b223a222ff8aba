/**
 * The notification watchdog and keep-alive against the simulator on a private bus: a zombie link
 * (notifications stop, Connected stays true) on hci1 is declared, disconnected on hci1, recorded as
 * a `zombie` failure that escalation counts, and reconnected; a probe that answers prevents the
 * zombie; a device that keeps notifying gives no false zombie and the watchdog sends nothing on the
 * bus; keep-alive reconnects after a link drop and `closed` says when the library gives up.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  createConnectionActor,
  establishConnection,
  type ManagedConnection,
} from '../../src/connection/establish.js';
import { ConnectionWatchdog } from '../../src/connection/connection-watchdog.js';
import { busyDeviceLocks } from '../../src/actors/device-lock.js';
import type { ConnectionEmitted } from '../../src/machines/connection.js';
import type { DeviceSpec } from '../../src/testing/index.js';
import {
  BATTERY_LEVEL,
  BATTERY_SERVICE,
  DEVICE,
  deviceCalls,
  eventually,
  scenarioOptions,
  simDevice,
  startWorld,
  trackTimers,
  type World,
} from './harness.js';

let world: World | undefined;
const open: ManagedConnection[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (const c of open.splice(0)) await c.disconnect();
  await world?.stop();
  world = undefined;
  expect(busyDeviceLocks()).toEqual([]);
});

const settle = () => new Promise((r) => setTimeout(r, 50));

/** A BMS that notifies its battery level every `everyMs` while subscribed. */
function notifyingBms(knownOn: string[], everyMs = 40): DeviceSpec {
  return {
    address: DEVICE,
    name: 'bms',
    addressType: 'random',
    rssi: -58,
    knownOn,
    uuids: [BATTERY_SERVICE],
    services: [
      {
        uuid: BATTERY_SERVICE,
        characteristics: [
          { uuid: BATTERY_LEVEL, flags: ['read', 'notify'], value: [87], notifyIntervalMs: everyMs },
        ],
      },
    ],
  };
}

function levelPath(w: World, adapter: string): string {
  const chr = w.bluez
    .gattServices(adapter, DEVICE)
    .flatMap((s) => s.characteristics)
    .find((c) => c.uuid === BATTERY_LEVEL);
  if (chr === undefined) throw new Error(`battery level not exported on ${adapter}`);
  return chr.path;
}

/** Subscribes to the battery level; returns the arrival times (performance.now) of every value. */
async function subscribe(w: World, adapter: string): Promise<number[]> {
  const arrivals: number[] = [];
  const sub = await w.bluez.startNotify(levelPath(w, adapter), () => arrivals.push(performance.now()), {
    timeoutMs: 2000,
  });
  cleanups.push(() => sub.stop({ timeoutMs: 1000 }).catch(() => {}));
  return arrivals;
}

function collect<T extends ConnectionEmitted['type']>(conn: ManagedConnection, type: T) {
  const events: Array<Extract<ConnectionEmitted, { type: T }> & { at: number }> = [];
  const sub = conn.actor.on(type, (e) =>
    events.push({ ...(e as Extract<ConnectionEmitted, { type: T }>), at: performance.now() }),
  );
  cleanups.push(() => sub.unsubscribe());
  return events;
}

describe('notification watchdog against the simulator', () => {
  it('zombie on hci1: declared after timeoutMs of silence, disconnected on hci1, counted, reconnected, notifications flow again', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [notifyingBms(['hci1'])],
    });
    const timeoutMs = 500;
    const timers = trackTimers();
    const options = scenarioOptions(world, {
      adapters: ['hci1'],
      watchdog: { timeoutMs },
      keepAlive: true,
    });
    const conn = await establishConnection(options);
    open.push(conn);
    const zombies = collect(conn, 'zombie');
    const escalations = collect(conn, 'escalation');
    const arrivals = await subscribe(world, 'hci1');
    await eventually('notifications flow', () => arrivals.length >= 3);
    world.env.sim.clearCalls();

    // Notifications stop; BlueZ keeps Connected=true and sends no disconnect.
    const zombie = world.env.sim.inject({ kind: 'zombie', target: { device: DEVICE, adapter: 'hci1' } });
    const injectedAt = performance.now();
    // Generous bound (a loaded 2-core machine), not the precision claim: that is the silence below.
    await eventually('zombie declared', () => zombies.length > 0, timeoutMs * 10);
    const lastValueAt = arrivals[arrivals.length - 1] ?? injectedAt;
    const measuredSilence = zombies[0]!.at - lastValueAt;
    console.log(
      `zombie declared after ${measuredSilence.toFixed(1)} ms of silence (watchdog says ${zombies[0]!.silenceMs} ms; timeoutMs ${timeoutMs}, +10 % = ${timeoutMs * 1.1})`,
    );
    expect(zombies[0]).toMatchObject({ type: 'zombie', adapter: 'hci1', timeoutMs, action: 'reconnect' });
    // Never earlier than timeoutMs after the last value (1 ms for the two listeners of one signal).
    expect(measuredSilence).toBeGreaterThanOrEqual(timeoutMs - 1);
    expect(zombies[0]!.silenceMs).toBeGreaterThanOrEqual(timeoutMs);
    expect(simDevice(world, 'hci1')?.connected).toBe(true); // BlueZ still says connected: a zombie
    zombie.clear(); // the peripheral comes back to life after the reconnect

    // Verified disconnect on hci1 (the adapter in use), nothing on hci0, then a new Connect on hci1.
    await eventually(
      'reconnected',
      () =>
        conn.actor.getSnapshot().value === 'connected' &&
        conn.actor.getSnapshot().context.attempts.some((a) => a.number === 1 && a.outcome === 'connected'),
      10_000,
    );
    expect(deviceCalls(world, 'hci1')).toEqual(['Disconnect', 'Connect']);
    expect(deviceCalls(world, 'hci0')).toEqual([]);
    expect(options.trail.states.slice(-9)).toEqual([
      'connected',
      'disconnecting',
      'escalating',
      'backoff',
      'locking',
      'clearing-stale',
      'connecting',
      'validating',
      'connected',
    ]);
    // The zombie is the first record of the reconnect run, a failure escalation counted.
    const attempts = conn.actor.getSnapshot().context.attempts;
    expect(attempts[0]).toMatchObject({ number: 0, adapter: 'hci1', outcome: 'failed' });
    expect(attempts[0]?.cause).toMatchObject({ class: 'zombie', code: 'ZOMBIE_LINK' });
    expect(escalations[0]).toMatchObject({ adapter: 'hci1', failures: 1 });
    expect(conn.adapter).toBe('hci1');

    // A fresh watchdog runs on the new link, and notifications flow again.
    const again = await subscribe(world, 'hci1');
    await eventually('notifications flow again', () => again.length >= 3);
    expect(zombies).toHaveLength(1);

    for (const c of cleanups.splice(0).reverse()) await c();
    await conn.disconnect();
    open.length = 0;
    expect(await conn.closed).toMatchObject({ reason: 'disconnected', error: null });
    expect(world.bluez.mirror.pendingWaits).toBe(0);
    await settle();
    // The watchdog's silence timer and every deadline are gone (the simulator's own timers run on).
    expect(timers.stop().filter((t) => !t.includes('/testing/'))).toEqual([]);
  });

  it('with a probe that answers, a silent but healthy link is not declared a zombie', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [notifyingBms(['hci0'])] });
    const timeoutMs = 300;
    const conn = await establishConnection(
      scenarioOptions(world, { watchdog: { timeoutMs, probe: BATTERY_LEVEL }, keepAlive: true }),
    );
    open.push(conn);
    const zombies = collect(conn, 'zombie');
    await subscribe(world, 'hci0');
    world.env.sim.inject({ kind: 'zombie', target: { device: DEVICE } });
    world.env.sim.clearCalls();
    await new Promise((r) => setTimeout(r, timeoutMs * 6));
    expect(zombies).toEqual([]);
    expect(conn.actor.getSnapshot().value).toBe('connected');
    // It did probe: ReadValue calls, and no Disconnect.
    const reads = world.env.sim.calls.filter((c) => c.member === 'ReadValue');
    expect(reads.length).toBeGreaterThanOrEqual(2);
    expect(deviceCalls(world, 'hci0')).toEqual([]);
  });

  it('a device notifying for 10 × timeoutMs: zero false zombies and not one D-Bus call from the watchdog', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [notifyingBms(['hci0'], 30)] });
    const timeoutMs = 250;
    const conn = await establishConnection(
      scenarioOptions(world, { watchdog: { timeoutMs }, keepAlive: true }),
    );
    open.push(conn);
    const zombies = collect(conn, 'zombie');
    const arrivals = await subscribe(world, 'hci0');
    world.env.sim.clearCalls();
    const before = arrivals.length;
    await new Promise((r) => setTimeout(r, timeoutMs * 10));
    expect(arrivals.length - before).toBeGreaterThan(10);
    expect(zombies).toEqual([]);
    // It listens, it does not poll: bluetoothd received nothing at all meanwhile.
    expect(world.env.sim.calls).toEqual([]);
    expect(conn.actor.getSnapshot().value).toBe('connected');
  });

  it('the app tells the watchdog about data it gets by other paths: notifyActivity keeps a silent link alive', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [notifyingBms(['hci0'])] });
    const timeoutMs = 300;
    const conn = await establishConnection(
      scenarioOptions(world, { watchdog: { timeoutMs, action: 'report' } }),
    );
    open.push(conn);
    const zombies = collect(conn, 'zombie');
    // No subscription at all: only the app's own activity reports.
    const beat = setInterval(() => conn.notifyActivity(), 60);
    await new Promise((r) => setTimeout(r, timeoutMs * 4));
    clearInterval(beat);
    expect(zombies).toEqual([]);
    // Silence now: `report` declares it and leaves the link alone.
    await eventually('zombie reported', () => zombies.length > 0, timeoutMs * 10);
    expect(zombies[0]).toMatchObject({ action: 'report', adapter: 'hci0' });
    expect(conn.actor.getSnapshot().value).toBe('connected');
    expect(deviceCalls(world, 'hci0')).not.toContain('Disconnect');
  });
});

describe('keep-alive for a standalone actor', () => {
  it('keepAlive on: the actor reconnects after a link drop on the same adapter', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [notifyingBms(['hci1'])],
    });
    const options = scenarioOptions(world, { adapters: ['hci1'], keepAlive: true });
    const actor = createConnectionActor({ ...options, bluez: world.bluez });
    cleanups.push(() => {
      actor.stop();
    });
    actor.send({ type: 'CONNECT' });
    await eventually('connected', () => actor.getSnapshot().value === 'connected');
    world.env.sim.clearCalls();
    world.env.sim.inject({ kind: 'link-drop', target: { device: DEVICE, adapter: 'hci1' } });
    await eventually('link lost', () => actor.getSnapshot().value !== 'connected');
    await eventually('reconnected', () => actor.getSnapshot().value === 'connected');
    expect(options.trail.states.slice(-7)).toEqual([
      'connected',
      'backoff',
      'locking',
      'clearing-stale',
      'connecting',
      'validating',
      'connected',
    ]);
    const attempts = actor.getSnapshot().context.attempts;
    expect(attempts[0]).toMatchObject({ number: 0, cause: { class: 'notConnected', code: 'LINK_LOST' } });
    expect(attempts[1]).toMatchObject({ number: 1, adapter: 'hci1', outcome: 'connected' });
    expect(deviceCalls(world, 'hci1')).toContain('Connect');
    expect(deviceCalls(world, 'hci0')).toEqual([]);
    expect(simDevice(world, 'hci1')?.connected).toBe(true);
  });

  it('keepAlive off: a link drop ends in idle and closed says link-lost', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [notifyingBms(['hci0'])] });
    const options = scenarioOptions(world);
    const conn = await establishConnection(options);
    open.push(conn);
    world.env.sim.inject({ kind: 'link-drop', target: { device: DEVICE } });
    const closed = await conn.closed;
    expect(closed.reason).toBe('link-lost');
    expect(conn.actor.getSnapshot().value).toBe('idle');
    expect(options.trail.states.slice(-2)).toEqual(['connected', 'idle']);
  });

  it('keepAlive gives up when every reconnect fails: closed resolves gave-up with the attempts', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [notifyingBms(['hci0'])] });
    const conn = await establishConnection(scenarioOptions(world, { keepAlive: true, maxAttempts: 2 }));
    open.push(conn);
    world.env.sim.inject({
      kind: 'fail-connect',
      target: { device: DEVICE },
      count: 10,
      errorName: 'org.bluez.Error.Failed',
      message: 'le-connection-abort-by-local',
    });
    world.env.sim.inject({ kind: 'link-drop', target: { device: DEVICE } });
    const closed = await conn.closed;
    expect(closed.reason).toBe('gave-up');
    expect(closed.error?.name).toBe('ConnectionFailedError');
    expect(closed.attempts.map((a) => [a.number, a.cause?.class])).toEqual([
      [0, 'notConnected'],
      [1, 'aborted'],
      [2, 'aborted'],
    ]);
  });
});

describe('standalone ConnectionWatchdog for a device the caller holds (node-ble)', () => {
  it('declares the zombie, disconnects it on hci1, calls onTimeout, and re-arms after the caller reconnects', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [notifyingBms(['hci1'])],
    });
    // The caller's own node-ble objects (here on the library's bus connection to the private bus).
    const nodeBle = world.bluez.nodeBle();
    const device = await (await nodeBle.getAdapter('hci1')).getDevice(DEVICE);
    await device.connect();
    await eventually('resolved', () => world!.bluez.device('hci1', DEVICE)?.servicesResolved === true);
    const timeoutMs = 300;
    const timeouts: number[] = [];
    const watchdog = new ConnectionWatchdog({
      timeoutMs,
      device: device as unknown as { adapter: string; device: string },
      bluez: world.bluez,
      onTimeout: (r) => {
        timeouts.push(r.silenceMs);
      },
    });
    cleanups.push(() => watchdog.stop());
    await watchdog.start();
    const arrivals = await subscribe(world, 'hci1');
    await eventually('notifications flow', () => arrivals.length >= 3);
    world.env.sim.clearCalls();
    world.env.sim.inject({ kind: 'zombie', target: { device: DEVICE, adapter: 'hci1' } });
    await eventually('onTimeout', () => timeouts.length === 1, timeoutMs * 10);
    expect(timeouts[0]).toBeGreaterThanOrEqual(timeoutMs);
    expect(deviceCalls(world, 'hci1')).toEqual(['Disconnect']);
    expect(deviceCalls(world, 'hci0')).toEqual([]);
    expect(simDevice(world, 'hci1')?.connected).toBe(false);
    // The caller reconnects (the peripheral is still a zombie): the watchdog fires again.
    await device.connect();
    await eventually('second onTimeout', () => timeouts.length === 2, timeoutMs * 10);
    expect(watchdog.zombies).toBe(2);
    await watchdog.stop();
    expect(watchdog.isRunning).toBe(false);
    expect(world.bluez.mirror.pendingWaits).toBe(0);
  });

  it('rejects bad options by field name before any I/O', () => {
    const device = { adapter: 'hci0', address: DEVICE };
    expect(() => new ConnectionWatchdog({ timeoutMs: -1, device })).toThrow(/timeoutMs/);
    expect(
      () => new ConnectionWatchdog({ timeoutMs: 100, device: { adapter: 'hciX', address: DEVICE } }),
    ).toThrow(/device.adapter/);
    expect(() => new ConnectionWatchdog({ timeoutMs: 100, device, probe: 'battery' })).toThrow(/probe/);
  });
});

describe('watchdog in a pooled connection', () => {
  it('a pooled zombie on hci1 is disconnected on hci1 and the pool reconnects it', async () => {
    const { startPoolWorld } = await import('../pool/sim-harness.js');
    const pw = await startPoolWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [notifyingBms(['hci1'])],
    });
    cleanups.push(() => pw.stop());
    const child = pw.pool.connect(DEVICE, { watchdog: { timeoutMs: 300 } });
    await pw.pool.connected(DEVICE);
    const zombies: unknown[] = [];
    const sub = child.on('zombie', (e: unknown) => zombies.push(e));
    cleanups.push(() => sub.unsubscribe());
    const adapter = (child.getSnapshot() as { context: { adapter: string } }).context.adapter;
    expect(adapter).toBe('hci1');
    const path = pw.bluez
      .gattServices('hci1', DEVICE)
      .flatMap((s) => s.characteristics)
      .find((c) => c.uuid === BATTERY_LEVEL)!.path;
    const notifications = await pw.bluez.startNotify(path, () => {}, { timeoutMs: 2000 });
    cleanups.push(() => notifications.stop({ timeoutMs: 1000 }).catch(() => {}));
    pw.env.sim.clearCalls();
    const fault = pw.env.sim.inject({ kind: 'zombie', target: { device: DEVICE, adapter: 'hci1' } });
    await eventually('zombie in the pool child', () => zombies.length > 0, 5000);
    fault.clear();
    await eventually(
      'reconnected by the pool',
      () =>
        pw.env.sim.calls.some((c) => c.member === 'Connect') &&
        (pw.pool.snapshot().devices.find((d) => d.address === DEVICE)?.status ?? '') === 'connected',
      10_000,
    );
    const device = pw.env.sim.calls.filter((c) => c.interface === 'org.bluez.Device1').map((c) => c.path);
    expect(device[0]).toBe('/org/bluez/hci1/dev_AA_BB_CC_DD_EE_01'); // the Disconnect, on hci1
    expect(pw.env.sim.calls.find((c) => c.interface === 'org.bluez.Device1')?.member).toBe('Disconnect');
  });
});
