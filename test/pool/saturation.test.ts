/**
 * A full adapter is never reset, and a device refused for lack of slots waits instead of hammering
 * the controller (user-pain §3: saturation is fixed by rotation and queueing, with a back-off). The
 * pool over the real connection actors and src/bluez, against the BlueZ simulator, with another
 * service on the host holding links on the same controller.
 */
import { afterEach, expect, it } from 'vitest';
import { openBluez } from '../../src/bluez/client.js';
import type { BluezClient } from '../../src/bluez/client-types.js';
import type { PoolEmitted } from '../../src/machines/adapter-pool-steps.js';
import type { ConnectionContext } from '../../src/machines/connection-contracts.js';
import { eventually, peripheral, startPoolWorld, type PoolWorld } from './sim-harness.js';

const D = (n: number) => `AA:BB:CC:00:00:0${n}`;
let world: PoolWorld | undefined;
let otherService: BluezClient | undefined;
afterEach(async () => {
  await otherService?.close();
  otherService = undefined;
  await world?.stop();
  world = undefined;
});

it('a refusal for lack of slots on an adapter another service filled never resets it (reset enabled at 1 failure): the device waits without retrying, the next device goes elsewhere, and the waiting one connects once a slot frees', async () => {
  const F1 = D(1); // the other service's devices, only hci0 hears them
  const F2 = D(2);
  const Y = D(3); // only hci0 hears it
  const Z = D(4); // both adapters hear it
  const only0 = { knownOn: ['hci0'], inRange: ['hci0'] };
  world = await startPoolWorld(
    {
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [peripheral(F1, only0), peripheral(F2, only0), peripheral(Y, only0), peripheral(Z)],
      faults: [
        // The controller holds 2 links, and the pool is configured for exactly that.
        { kind: 'slot-limit', target: { adapter: 'hci0' }, slots: 2 },
        // Y's connect takes long enough for the other service to take the last slot meanwhile.
        { kind: 'connect-latency', target: { device: Y, adapter: 'hci0' }, ms: 800 },
      ],
    },
    {
      slotsPerAdapter: 2,
      resetLadder: { settleMs: 20, offSettleMs: 20, stepTimeoutMs: 3000 },
      defaults: { escalation: { reset: true, resetAfter: 1, resetCooldownMs: 0 } },
    },
  );
  const w = world;
  const events: PoolEmitted[] = [];
  w.pool.actor.on('*', (e) => events.push(e as PoolEmitted));
  const connectsOf = (address: string) =>
    w.env.sim.calls.filter(
      (c) => c.member === 'Connect' && c.path === `/org/bluez/hci0/dev_${address.replace(/:/g, '_')}`,
    ).length;
  const powerWrites = () =>
    w.env.sim.calls.filter(
      (c) =>
        c.interface === 'org.freedesktop.DBus.Properties' &&
        c.member === 'Set' &&
        /^\/org\/bluez\/hci\d+$/.test(c.path),
    );

  otherService = await openBluez({ busAddress: w.env.address, dbusCallTimeoutMs: 5000 });
  const other = otherService;
  await other.connect('hci0', F1, { waitServicesResolved: true, timeoutMs: 5000 });

  // hci0 has one free slot: Y gets it, and while its connect is under way the other service takes it.
  const y = w.pool.connect(Y);
  await eventually(
    'Y connecting on hci0 in bluetoothd',
    () =>
      w.env.sim
        .state()
        .adapters.find((a) => a.name === 'hci0')
        ?.devices.find((d) => d.address === Y)?.connecting === true,
  );
  await other.connect('hci0', F2, { waitServicesResolved: true, timeoutMs: 5000 });

  // The controller refuses Y (out of slots). No reset and no second try: Y waits for a slot.
  await eventually(
    'Y parked, or the adapter power-cycled, or Y sent back to hci0',
    () => y.getSnapshot().value === 'waiting-for-slot' || powerWrites().length > 0 || connectsOf(Y) > 1,
    10_000,
  );
  expect(powerWrites()).toEqual([]);
  expect(connectsOf(Y)).toBe(1);
  expect(y.getSnapshot().value).toBe('waiting-for-slot');
  expect(events).toContainEqual(
    expect.objectContaining({ type: 'device-requeued', address: Y, from: 'hci0' }),
  );
  expect(
    (y.getSnapshot().context as ConnectionContext).attempts.map((a) => [
      a.adapter,
      a.outcome,
      a.cause?.class,
      a.escalation,
    ]),
  ).toEqual([['hci0', 'failed', 'outOfSlots', 'rotate']]);

  // Z is not offered the full hci0 at all: the pool counts the other service's links.
  expect((await w.pool.connected(Z)).adapter).toBe('hci1');
  expect(events.filter((e) => e.type === 'device-assigned' && e.address === Z)).toEqual([
    { type: 'device-assigned', address: Z, adapter: 'hci1' },
  ]);

  // While nothing changes on hci0, Y is not sent back to be refused again.
  await new Promise((r) => setTimeout(r, 300));
  expect(connectsOf(Y)).toBe(1);
  expect(w.pool.snapshot().queued).toEqual([Y]);

  // Nothing power-cycled the adapter: no Powered write reached bluetoothd, no ladder step ran, and
  // the other service's links are intact.
  expect(powerWrites()).toEqual([]);
  expect(w.logs.filter((l) => /powerCycle|stopDiscovery|will drop connections|recovered/.test(l))).toEqual(
    [],
  );
  expect(w.simLinks().hci0?.sort()).toEqual([F1, F2]);
  expect(w.env.sim.state().adapters.every((a) => a.powered)).toBe(true);

  // The other service lets a link go: the freed slot goes to Y, on the same actor.
  await other.disconnect('hci0', F1, { timeoutMs: 5000 });
  await eventually('Y connected on hci0', () =>
    w.pool
      .snapshot()
      .devices.some((d) => d.address === Y && d.status === 'connected' && d.adapter === 'hci0'),
  );
  expect(w.pool.child(Y)).toBe(y);
  expect(connectsOf(Y)).toBe(2);
  expect(w.simLinks().hci0?.sort()).toEqual([F2, Y]);
  expect(w.simLinks().hci1).toEqual([Z]);
  expect(powerWrites()).toEqual([]);
  expect(events.filter((e) => e.type === 'device-failed')).toEqual([]);
});
