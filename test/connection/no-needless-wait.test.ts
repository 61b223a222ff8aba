/**
 * Where BlueZ itself gives the answer, the library does not add a wait of its own (issue 11,
 * "faster than bleak where both succeed"), against the simulator on a private bus. Each backoff of
 * the class involved is set to a minute: a test that passes never started that timer (checked on
 * setTimeout itself).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { establishConnection, type ManagedConnection } from '../../src/connection/establish.js';
import { DEVICE, bms, deviceCalls, eventually, scenarioOptions, startWorld, type World } from './harness.js';

const MINUTE = 60_000;

let world: World | undefined;
const open: ManagedConnection[] = [];
let timers: ReturnType<typeof vi.spyOn> | undefined;

/** Records every setTimeout delay from now on. */
function watchTimers(): () => number[] {
  const spy = vi.spyOn(globalThis, 'setTimeout');
  timers = spy;
  return () => spy.mock.calls.map((c) => Number(c[1] ?? 0));
}

afterEach(async () => {
  timers?.mockRestore();
  timers = undefined;
  for (const c of open.splice(0)) await c.disconnect();
  await world?.stop();
  world = undefined;
});

describe('no needless waits (simulator)', () => {
  it('RF abort: retried as soon as BlueZ showed Connected=false, without the aborted backoff', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.inject({ kind: 'rf-abort', target: { device: DEVICE }, count: 1, linkUpMs: 50 });
    const delays = watchTimers();
    const conn = await establishConnection(scenarioOptions(world, { backoffMs: { aborted: MINUTE } }));
    open.push(conn);
    // linkDownSeen: the connect actor saw Connected=false in the mirror before it gave up the attempt.
    expect(conn.actor.getSnapshot().context.attempts.map((a) => a.cause)).toMatchObject([
      { class: 'aborted', linkDownSeen: true },
      null,
    ]);
    expect(deviceCalls(world, 'hci0')).toEqual(['Connect!Failed', 'Connect']);
    expect(delays()).not.toContain(MINUTE);
  });

  it('stale InProgress: the pending connect is cancelled and the device connects without the InProgress backoff', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.inject({ kind: 'stale-in-progress', target: { device: DEVICE } });
    const delays = watchTimers();
    const conn = await establishConnection(scenarioOptions(world, { backoffMs: { inProgress: MINUTE } }));
    open.push(conn);
    expect(deviceCalls(world, 'hci0')).toEqual(['Connect!InProgress', 'Disconnect', 'Connect']);
    expect(delays()).not.toContain(MINUTE);
  });

  it('out of slots on hci0: the next attempt goes to hci1 without the out-of-slots backoff', async () => {
    const OTHER = 'AA:BB:CC:DD:EE:02';
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [bms(['hci0', 'hci1']), bms(['hci0'], OTHER)],
    });
    world.env.sim.inject({ kind: 'slot-limit', target: { adapter: 'hci0' }, slots: 1 });
    await world.bluez.connect('hci0', OTHER, { waitServicesResolved: true, timeoutMs: 5000 });
    world.env.sim.clearCalls();
    const delays = watchTimers();
    const conn = await establishConnection(
      scenarioOptions(world, {
        adapters: ['hci0', 'hci1'],
        slotsPerAdapter: 1,
        backoffMs: { outOfSlots: MINUTE },
      }),
    );
    open.push(conn);
    expect(conn.attempts.map((a) => [a.adapter, a.cause?.class ?? a.outcome])).toEqual([
      ['hci0', 'outOfSlots'],
      ['hci1', 'connected'],
    ]);
    expect(delays()).not.toContain(MINUTE);
    await world.bluez.verifiedDisconnect('hci0', OTHER, { timeoutMs: 2000 });
  });

  it('phantom with closeInactiveConnections: cleared with RemoveDevice at once, no Disconnect to wait for', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world.env.sim.inject({ kind: 'phantom', target: { device: DEVICE } }).clear();
    await eventually('the mirror sees the phantom', () => world!.bluez.isPhantom('hci0', DEVICE));
    world.env.sim.clearCalls();
    const delays = watchTimers();
    const options = scenarioOptions(world, { closeInactiveConnections: true, disconnectTimeoutMs: MINUTE });
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
    expect(deviceCalls(world, 'hci0')).toEqual([
      'RemoveDevice',
      'StartDiscovery',
      'StopDiscovery',
      'Connect',
    ]);
    // RemoveDevice and the waits around it are bounded by disconnectTimeoutMs; none ran out.
    expect(world.env.sim.calls.find((c) => c.member === 'RemoveDevice')?.repliedAt).toBeDefined();
    expect(delays().filter((d) => d === MINUTE).length).toBeGreaterThan(0);
  });

  it('a paired phantom keeps its bond if it can: a bounded Disconnect first, then RemoveDevice', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [{ ...bms(), paired: true }] });
    world.env.sim.inject({ kind: 'phantom', target: { device: DEVICE } }).clear();
    await eventually('the mirror sees the phantom', () => world!.bluez.isPhantom('hci0', DEVICE));
    world.env.sim.clearCalls();
    const conn = await establishConnection(
      scenarioOptions(world, { closeInactiveConnections: true, disconnectTimeoutMs: 300 }),
    );
    open.push(conn);
    expect(deviceCalls(world, 'hci0').slice(0, 2)).toEqual(['Disconnect', 'RemoveDevice']);
  });
});
