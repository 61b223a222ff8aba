/**
 * The connection actor against the BlueZ simulator on a private bus: each workaround of SPEC §2
 * driven by the fault it answers, asserting the actor's state sequence and what bluetoothd saw.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionFailedError } from '../../src/bluez/errors.js';
import {
  createConnectionActor,
  establishConnection,
  type ManagedConnection,
} from '../../src/connection/establish.js';
import { EscalationPolicy } from '../../src/machines/escalation-policy.js';
import { busyDeviceLocks } from '../../src/actors/device-lock.js';
import {
  BATTERY_LEVEL,
  BATTERY_SERVICE,
  DEVICE,
  bms,
  deviceCalls,
  eventually,
  scenarioOptions,
  simDevice,
  startWorld,
  type World,
} from './harness.js';

const HAPPY = ['idle', 'locking', 'clearing-stale', 'connecting', 'validating', 'connected'];
const RETRY = ['escalating', 'backoff', 'locking', 'clearing-stale', 'connecting'];

let world: World | undefined;
const open: ManagedConnection[] = [];

afterEach(async () => {
  for (const c of open.splice(0)) await c.disconnect();
  await world?.stop();
  world = undefined;
  expect(busyDeviceLocks()).toEqual([]);
});

describe('connection actor against the simulator', () => {
  it('connects a healthy device through every named step, gives node-ble device and GATT, and disconnects verified', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    const options = scenarioOptions(world);
    const conn = await establishConnection(options);
    expect(options.trail.states).toEqual(HAPPY);
    expect(conn.adapter).toBe('hci0');
    expect(conn.attempts).toMatchObject([{ number: 1, adapter: 'hci0', outcome: 'connected', cause: null }]);
    expect(await conn.gatt.services()).toContain(BATTERY_SERVICE);
    expect(simDevice(world, 'hci0')).toMatchObject({ connected: true, servicesResolved: true });
    await conn.disconnect();
    expect(options.trail.states.slice(-3)).toEqual(['connected', 'disconnecting', 'idle']);
    expect(simDevice(world, 'hci0')?.connected).toBe(false);
    expect(world.bluez.mirror.pendingWaits).toBe(0);
  });

  it('phantom on hci1 is cleared with closeInactiveConnections, on hci1 only, and the device connects', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [bms(['hci0', 'hci1'])],
    });
    // bluetoothd believes in a link on hci1 that the controller does not have.
    world.env.sim.inject({ kind: 'phantom', target: { device: DEVICE, adapter: 'hci1' } }).clear();
    expect(simDevice(world, 'hci1')).toMatchObject({
      connected: true,
      servicesResolved: false,
      phantom: true,
    });
    await eventually('mirror sees the phantom', () => world!.bluez.isPhantom('hci1', DEVICE));
    world.env.sim.clearCalls();
    const options = scenarioOptions(world, { adapters: ['hci1'], closeInactiveConnections: true });
    const conn = await establishConnection(options);
    open.push(conn);
    expect(options.trail.states).toEqual([
      'idle',
      'locking',
      'clearing-stale',
      'phantom',
      'connecting',
      'validating',
      'connected',
    ]);
    expect(conn.adapter).toBe('hci1');
    expect(simDevice(world, 'hci1')).toMatchObject({
      connected: true,
      servicesResolved: true,
      phantom: false,
    });
    // Every cleanup call went to the adapter in use; hci0 saw nothing.
    expect(deviceCalls(world, 'hci0')).toEqual([]);
    // Straight to RemoveDevice: no Disconnect that a phantom never completes.
    expect(deviceCalls(world, 'hci1')).toContain('RemoveDevice');
    expect(deviceCalls(world, 'hci1')).not.toContain('Disconnect');
  });

  it('without closeInactiveConnections the phantom is reported and left alone', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.inject({ kind: 'phantom', target: { device: DEVICE } }).clear();
    await eventually('mirror sees the phantom', () => world!.bluez.isPhantom('hci0', DEVICE));
    world.env.sim.clearCalls();
    const warnings: string[] = [];
    const options = scenarioOptions(world, {
      maxAttempts: 2,
      logger: { warn: (_fields, m) => warnings.push(m) },
    });
    const error = await establishConnection(options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionFailedError);
    expect(options.trail.states).toEqual([
      'idle',
      'locking',
      'clearing-stale',
      'phantom',
      'escalating',
      'backoff',
      'locking',
      'clearing-stale',
      'phantom',
      'escalating',
      'failed',
    ]);
    expect((error as ConnectionFailedError).message).toMatch(/phantom/);
    expect((error as ConnectionFailedError).attempts.map((a) => a.errorClass)).toEqual([
      'phantom',
      'phantom',
    ]);
    expect(warnings.filter((w) => /phantom connection on hci0/.test(w))).toHaveLength(2);
    expect(deviceCalls(world)).toEqual([]);
    expect(simDevice(world, 'hci0')).toMatchObject({ connected: true, phantom: true });
  });

  it('stale InProgress is cancelled and the next attempt connects', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.inject({ kind: 'stale-in-progress', target: { device: DEVICE } });
    const options = scenarioOptions(world);
    const conn = await establishConnection(options);
    open.push(conn);
    expect(options.trail.states).toEqual([...HAPPY.slice(0, 4), ...RETRY, 'validating', 'connected']);
    expect(conn.attempts.map((a) => a.cause?.class ?? a.outcome)).toEqual(['inProgress', 'connected']);
    expect(deviceCalls(world, 'hci0')).toEqual(['Connect!InProgress', 'Disconnect', 'Connect']);
  });

  it('two callers of one address in one process are serialized by the mutex; the second adopts the link', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    const first = scenarioOptions(world);
    const second = scenarioOptions(world);
    const [a, b] = await Promise.all([establishConnection(first), establishConnection(second)]);
    open.push(a);
    expect(first.trail.states).toEqual(HAPPY);
    expect(second.trail.states).toEqual(['idle', 'locking', 'clearing-stale', 'validating', 'connected']);
    expect(b.actor.getSnapshot().context.attempts[0]?.adopted).toBe(true);
    // One Connect, no InProgress: the second caller never raced the first.
    expect(deviceCalls(world, 'hci0')).toEqual(['Connect']);
    b.actor.stop();
  });

  it('three RF aborts then success', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.inject({ kind: 'rf-abort', target: { device: DEVICE }, count: 3, linkUpMs: 20 });
    const options = scenarioOptions(world);
    const conn = await establishConnection(options);
    open.push(conn);
    expect(options.trail.states).toEqual([
      ...HAPPY.slice(0, 4),
      ...RETRY,
      ...RETRY,
      ...RETRY,
      'validating',
      'connected',
    ]);
    expect(conn.attempts.map((a) => a.cause?.class ?? a.outcome)).toEqual([
      'aborted',
      'aborted',
      'aborted',
      'connected',
    ]);
    expect(deviceCalls(world, 'hci0')).toEqual([
      'Connect!Failed',
      'Connect!Failed',
      'Connect!Failed',
      'Connect',
    ]);
  });

  it('empty GATT fails validation, the link is torn down, and a new attempt connects', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.inject({ kind: 'empty-gatt', target: { device: DEVICE }, count: 1 });
    const options = scenarioOptions(world, { lateGattDelaysMs: [50] });
    const conn = await establishConnection(options);
    open.push(conn);
    expect(options.trail.states).toEqual([
      ...HAPPY.slice(0, 5),
      'disconnecting',
      ...RETRY,
      'validating',
      'connected',
    ]);
    expect(conn.attempts[0]?.cause).toMatchObject({ class: 'validation', code: 'VALIDATION_FAILED' });
    expect(conn.attempts[0]?.cause?.message).toMatch(/no GATT services/);
    expect(deviceCalls(world, 'hci0')).toEqual(['Connect', 'Disconnect', 'Connect']);
  });

  it('late GATT at 3 s: connected in the same attempt, without a reconnect', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.inject({ kind: 'late-gatt', target: { device: DEVICE }, ms: 3000 });
    const options = scenarioOptions(world, { lateGattDelaysMs: [2000, 4000, 8000] });
    const conn = await establishConnection(options);
    open.push(conn);
    expect(options.trail.states).toEqual(HAPPY);
    expect(conn.attempts).toHaveLength(1);
    expect(deviceCalls(world, 'hci0')).toEqual(['Connect']);
    // Returned when the services appeared, well before the 2 s + 4 s re-check windows ran out.
    expect(conn.attempts[0]?.durationMs).toBeLessThan(6000);
    expect(await conn.gatt.services()).toContain(BATTERY_SERVICE);
  }, 20_000);

  it('a Connect that never replies ends at the per-attempt deadline and the next attempt proceeds', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.inject({
      kind: 'hang',
      target: { device: DEVICE },
      interface: 'org.bluez.Device1',
      member: 'Connect',
      count: 1,
    });
    const options = scenarioOptions(world, { attemptTimeoutMs: 600 });
    const conn = await establishConnection(options);
    open.push(conn);
    expect(options.trail.states).toEqual([
      ...HAPPY.slice(0, 4),
      'disconnecting',
      ...RETRY,
      'validating',
      'connected',
    ]);
    expect(conn.attempts[0]?.cause).toMatchObject({ class: 'noReply', code: 'ATTEMPT_DEADLINE' });
  });

  it('a saturated hci0 refuses the link with an RF-abort text: out of slots, and the next attempt goes to hci1 at once', async () => {
    const OTHER = 'AA:BB:CC:DD:EE:02';
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [bms(['hci0', 'hci1']), bms(['hci0'], OTHER)],
    });
    // The controller holds one link, and another device already has it.
    world.env.sim.inject({ kind: 'slot-limit', target: { adapter: 'hci0' }, slots: 1 });
    await world.bluez.connect('hci0', OTHER, { waitServicesResolved: true, timeoutMs: 5000 });
    world.env.sim.clearCalls();
    const options = scenarioOptions(world, { adapters: ['hci0', 'hci1'], slotsPerAdapter: 1 });
    const conn = await establishConnection(options);
    open.push(conn);
    expect(options.trail.states).toEqual([...HAPPY.slice(0, 4), ...RETRY, 'validating', 'connected']);
    expect(conn.adapter).toBe('hci1');
    // bluetoothd said le-connection-abort-by-local; with hci0 at its limit that is out of slots.
    expect(conn.attempts).toMatchObject([
      { adapter: 'hci0', outcome: 'failed', cause: { class: 'outOfSlots', code: 'OUT_OF_SLOTS' } },
      { adapter: 'hci1', outcome: 'connected' },
    ]);
    expect(conn.attempts[0]?.cause?.message).toMatch(/le-connection-abort-by-local/);
    expect(conn.actor.getSnapshot().context.attempts[0]?.escalation).toBe('rotate');
    expect(deviceCalls(world, 'hci0')).toEqual(['Connect!Failed']);
    expect(deviceCalls(world, 'hci1')).toEqual(['Connect']);
    await world.bluez.verifiedDisconnect('hci0', OTHER, { timeoutMs: 2000 });
  });

  it('with the default 5 slots, the same refusal on an adapter holding one link is an RF abort and is retried there', async () => {
    const OTHER = 'AA:BB:CC:DD:EE:02';
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [bms(['hci0', 'hci1']), bms(['hci0'], OTHER)],
    });
    world.env.sim.inject({ kind: 'slot-limit', target: { adapter: 'hci0' }, slots: 1 });
    await world.bluez.connect('hci0', OTHER, { waitServicesResolved: true, timeoutMs: 5000 });
    const options = scenarioOptions(world, { adapters: ['hci0', 'hci1'] });
    const conn = await establishConnection(options);
    open.push(conn);
    expect(conn.attempts.map((a) => [a.adapter, a.cause?.class ?? a.outcome])).toEqual([
      ['hci0', 'aborted'],
      ['hci0', 'aborted'],
      ['hci1', 'connected'],
    ]);
    await world.bluez.verifiedDisconnect('hci0', OTHER, { timeoutMs: 2000 });
  });

  it('exhausted attempts reject with a ConnectionFailedError listing each cause and adapter', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [bms(['hci0', 'hci1'])],
    });
    world.env.sim.inject({
      kind: 'fail-connect',
      target: { device: DEVICE },
      count: 99,
      errorName: 'org.bluez.Error.Failed',
      message: 'Software caused connection abort',
    });
    const options = scenarioOptions(world, { adapters: ['hci0', 'hci1'], maxAttempts: 3 });
    const error = await establishConnection(options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionFailedError);
    const failed = error as ConnectionFailedError;
    expect(failed.code).toBe('CONNECTION_FAILED');
    expect(failed.attempts.map((a) => [a.attempt, a.adapter, a.errorClass])).toEqual([
      [1, 'hci0', 'aborted'],
      [2, 'hci0', 'aborted'],
      [3, 'hci1', 'aborted'],
    ]);
    expect(failed.message).toMatch(/Software caused connection abort/);
    expect(options.trail.states.at(-1)).toBe('failed');
  });

  it('validators: a characteristic read that works keeps the connection', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    const { readCharacteristic } = await import('../../src/connection/validators.js');
    const options = scenarioOptions(world, { validate: readCharacteristic('2a19', 2000) });
    const conn = await establishConnection(options);
    open.push(conn);
    expect(options.trail.states).toEqual(HAPPY);
    expect(
      world.env.sim.calls.some((c) => c.member === 'ReadValue' && c.path.includes('dev_AA_BB_CC_DD_EE_01')),
    ).toBe(true);
    expect(BATTERY_LEVEL).toContain('2a19');
  });

  it('a shared EscalationPolicy keeps counting failures on hci0 across calls, and a success resets it', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    const policy = new EscalationPolicy('battery');
    world.env.sim.inject({ kind: 'rf-abort', target: { device: DEVICE }, count: 2 });
    const first = await establishConnection(
      scenarioOptions(world, { maxAttempts: 2, escalation: policy }),
    ).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(ConnectionFailedError);
    expect(policy.failureCount('hci0')).toBe(2);
    world.env.sim.inject({ kind: 'rf-abort', target: { device: DEVICE }, count: 1 });
    const options = scenarioOptions(world, { escalation: policy });
    const conn = await establishConnection(options);
    open.push(conn);
    // The third failure in a row on hci0 (one adapter: nothing to rotate to) is a diagnose, not a first failure.
    expect(conn.actor.getSnapshot().context.attempts[0]?.escalation).toBe('diagnose');
    expect(policy.failureCount('hci0')).toBe(0);
  });

  it('link loss while connected brings the actor back to idle and is reported', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    const warnings: string[] = [];
    const options = scenarioOptions(world, { logger: { warn: (_fields, m) => warnings.push(m) } });
    const conn = await establishConnection(options);
    open.push(conn);
    world.env.sim.dropLink(DEVICE);
    await eventually('actor idle', () => conn.actor.getSnapshot().value === 'idle');
    expect(options.trail.states.slice(-2)).toEqual(['connected', 'idle']);
    expect(warnings.some((w) => /link lost on hci0/.test(w))).toBe(true);
  });

  it('createConnectionActor gives the running actor: snapshots, emitted events and the inspection stream', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.inject({ kind: 'rf-abort', target: { device: DEVICE }, count: 1 });
    const options = scenarioOptions(world);
    const actor = createConnectionActor({ ...options, bluez: world.bluez });
    const escalations: unknown[] = [];
    actor.on('escalation', (e) => escalations.push(e));
    expect(actor.getSnapshot().value).toBe('idle');
    actor.send({ type: 'CONNECT' });
    await eventually('connected', () => actor.getSnapshot().value === 'connected');
    expect(escalations).toEqual([
      { type: 'escalation', address: DEVICE, adapter: 'hci0', action: 'diagnose', failures: 1 },
    ]);
    expect(options.trail.states).toEqual([...HAPPY.slice(0, 4), ...RETRY, 'validating', 'connected']);
    actor.send({ type: 'DISCONNECT' });
    await eventually('idle', () => actor.getSnapshot().value === 'idle');
    expect(simDevice(world, 'hci0')?.connected).toBe(false);
    actor.stop();
  });
});
