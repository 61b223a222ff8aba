/**
 * A full adapter is never reset (user-pain §3: saturation is fixed by rotation and queueing). The
 * pool over the real connection actors and src/bluez, against the BlueZ simulator, with resets
 * enabled at a low threshold: out-of-slots refusals must move devices elsewhere or make them wait,
 * and must never power-cycle the adapter that holds other services' links.
 */
import { afterEach, expect, it } from 'vitest';
import { openBluez } from '../../src/bluez/client.js';
import type { BluezClient } from '../../src/bluez/client-types.js';
import type { PoolEmitted } from '../../src/machines/adapter-pool-steps.js';
import { eventually, peripheral, startPoolWorld, type PoolWorld } from './sim-harness.js';

const D = (n: number) => `AA:BB:CC:00:00:0${n}`;
let world: PoolWorld | undefined;
let foreign: BluezClient | undefined;
afterEach(async () => {
  await foreign?.close();
  foreign = undefined;
  await world?.stop();
  world = undefined;
});

it('out-of-slots refusals on a full adapter never reset it: with reset enabled at 2 failures, the refused devices rotate or wait, and the other service keeps its links', async () => {
  const F1 = D(1); // another service's links fill hci0
  const F2 = D(2);
  const Z = D(3); // both adapters hear it
  const Y = D(4); // only hci0 hears it
  const only0 = { knownOn: ['hci0'], inRange: ['hci0'] };
  world = await startPoolWorld(
    {
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [peripheral(F1, only0), peripheral(F2, only0), peripheral(Z), peripheral(Y, only0)],
      // The controller holds 2 links, and the pool is configured for exactly that.
      faults: [{ kind: 'slot-limit', target: { adapter: 'hci0' }, slots: 2 }],
    },
    {
      slotsPerAdapter: 2,
      resetLadder: { settleMs: 20, offSettleMs: 20, stepTimeoutMs: 3000 },
      defaults: {
        escalation: { reset: true, resetAfter: 2, resetCooldownMs: 0 },
        // Each refusal would otherwise run into the attempt limit; the test is about what the
        // refusals lead to, not about giving up.
        maxAttempts: 50,
      },
    },
  );
  const w = world;
  const events: PoolEmitted[] = [];
  w.pool.actor.on('*', (e) => events.push(e as PoolEmitted));

  // Another service on the host holds both of hci0's slots; the pool cannot see them as its own.
  foreign = await openBluez({ busAddress: w.env.address, dbusCallTimeoutMs: 5000 });
  await foreign.connect('hci0', F1, { waitServicesResolved: true, timeoutMs: 5000 });
  await foreign.connect('hci0', F2, { waitServicesResolved: true, timeoutMs: 5000 });
  expect(w.simLinks().hci0?.sort()).toEqual([F1, F2]);
  w.env.sim.clearCalls();

  // Round-robin offers Z hci0 first; hci0 refuses it for lack of slots and it moves to hci1.
  const z = await w.pool.connected(Z);
  expect(z.adapter).toBe('hci1');
  expect(events).toContainEqual(
    expect.objectContaining({ type: 'device-assigned', address: Z, adapter: 'hci0' }),
  );
  expect(events).toContainEqual(
    expect.objectContaining({ type: 'device-rotated', address: Z, from: 'hci0', to: 'hci1' }),
  );

  // Y only hears hci0: it is refused there again and again while it waits for a slot.
  w.pool.connect(Y);
  const refusalsOfY = () =>
    w.env.sim.calls.filter(
      (c) => c.member === 'Connect' && c.path === `/org/bluez/hci0/dev_${Y.replace(/:/g, '_')}`,
    ).length;
  await eventually('Y refused on hci0 at least 3 times', () => refusalsOfY() >= 3);

  // No power cycle (no Powered write reached bluetoothd), no ladder step, the other service's links intact.
  const powerWrites = w.env.sim.calls.filter(
    (c) =>
      c.interface === 'org.freedesktop.DBus.Properties' &&
      c.member === 'Set' &&
      /^\/org\/bluez\/hci\d+$/.test(c.path),
  );
  expect(powerWrites).toEqual([]);
  expect(w.logs.filter((l) => /powerCycle|stopDiscovery|will drop connections|recovered/.test(l))).toEqual(
    [],
  );
  expect(w.simLinks().hci0?.sort()).toEqual([F1, F2]);
  expect(w.env.sim.state().adapters.every((a) => a.powered)).toBe(true);
  expect(w.pool.snapshot().devices.find((d) => d.address === Y)?.status).not.toBe('connected');
  expect(events.filter((e) => e.type === 'device-failed')).toEqual([]);

  // The other service lets one link go: Y takes the freed slot on hci0.
  await foreign.disconnect('hci0', F1, { timeoutMs: 5000 });
  await eventually('Y connected on hci0', () =>
    w.pool
      .snapshot()
      .devices.some((d) => d.address === Y && d.status === 'connected' && d.adapter === 'hci0'),
  );
  expect(w.simLinks().hci0?.sort()).toEqual([F2, Y]);
  expect(w.simLinks().hci1).toEqual([Z]);
  expect(events.filter((e) => e.type === 'device-failed')).toEqual([]);
});
