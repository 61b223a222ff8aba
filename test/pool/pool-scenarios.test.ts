/**
 * The adapter pool over the real connection actors and src/bluez, against the BlueZ simulator.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { busyDeviceLocks } from '../../src/actors/device-lock.js';
import type { PoolEmitted } from '../../src/machines/adapter-pool-steps.js';
import { topLevelState } from '../../src/machines/state-trail.js';
import { eventually, peripheral, startPoolWorld, type PoolWorld } from './sim-harness.js';

const D = (n: number) => `AA:BB:CC:00:00:0${n}`;
let world: PoolWorld | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

function record(w: PoolWorld): PoolEmitted[] {
  const events: PoolEmitted[] = [];
  w.pool.actor.on('*', (e) => events.push(e as PoolEmitted));
  return events;
}

describe('adapter pool on the simulator', () => {
  it('2 adapters × 2 slots and 6 devices: never more than 2 links per adapter, the rest queued, every device connected as slots free up', async () => {
    const devices = [1, 2, 3, 4, 5, 6].map((n) => peripheral(D(n)));
    world = await startPoolWorld(
      { adapters: [{ name: 'hci0' }, { name: 'hci1' }], devices },
      { slotsPerAdapter: 2 },
    );
    const w = world;
    const events = record(w);
    let worst = 0;
    const watch = setInterval(() => {
      for (const links of Object.values(w.simLinks())) worst = Math.max(worst, links.length);
    }, 5);
    try {
      for (let n = 1; n <= 6; n += 1) w.pool.connect(D(n));
      await eventually(
        '4 devices connected',
        () => w.pool.snapshot().devices.filter((d) => d.status === 'connected').length === 4,
      );
      const snap = w.pool.snapshot();
      expect(snap.adapters.map((a) => a.inUse.length)).toEqual([2, 2]);
      expect(snap.queued).toEqual([D(5), D(6)]);

      // Free slots one by one (a requested disconnect each), oldest connection first.
      const ever = () => new Set(events.flatMap((e) => (e.type === 'device-connected' ? [e.address] : [])));
      const released: string[] = [];
      while (ever().size < 6) {
        const victim = [...ever()].find((a) => !released.includes(a));
        if (victim === undefined) throw new Error('nothing left to disconnect');
        released.push(victim);
        const before = ever().size;
        await w.pool.disconnect(victim);
        await eventually('a waiting device takes the freed slot', () => ever().size > before);
      }
      expect(released).toHaveLength(2);
      await eventually('the last devices are up', () =>
        w.pool.snapshot().devices.every((d) => d.status === 'connected'),
      );
    } finally {
      clearInterval(watch);
    }
    expect(worst).toBe(2);
    expect(events.filter((e) => e.type === 'device-failed')).toEqual([]);
  });

  it('a controller with fewer slots than configured refuses the link: the device goes to the other adapter that sees it; a device only that controller sees waits for it', async () => {
    const X = D(1); // only hci0 hears it
    const Y = D(2); // only hci1
    const Z = D(3); // both
    const W = D(4); // only hci0
    world = await startPoolWorld({
      // The simulated controller holds 1 link; the pool is configured for the default 5.
      adapters: [{ name: 'hci0', slotLimit: 1 }, { name: 'hci1' }],
      devices: [
        peripheral(X, { knownOn: ['hci0'], inRange: ['hci0'] }),
        peripheral(Y, { knownOn: ['hci1'], inRange: ['hci1'] }),
        peripheral(Z),
        peripheral(W, { knownOn: ['hci0'], inRange: ['hci0'] }),
      ],
    });
    const w = world;
    const events = record(w);
    expect((await w.pool.connected(X)).adapter).toBe('hci0');
    expect((await w.pool.connected(Y)).adapter).toBe('hci1');

    const z = await w.pool.connected(Z);
    expect(z.adapter).toBe('hci1');
    // Round-robin gave it hci0 (after hci1), which refused the link; it moved to hci1.
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'device-assigned', address: Z, adapter: 'hci0' }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'device-rotated', address: Z, from: 'hci0', to: 'hci1' }),
    );
    expect(events).toContainEqual({ type: 'slot-limit-learned', adapter: 'hci0', limit: 1 });
    expect(w.pool.snapshot().adapters.find((a) => a.name === 'hci0')?.limit).toBe(1);

    w.pool.connect(W);
    expect(w.pool.snapshot().queued).toEqual([W]);
    await new Promise((r) => setTimeout(r, 300));
    expect(w.pool.snapshot().queued).toEqual([W]);
    expect(events.filter((e) => e.type === 'device-assigned' && e.address === W)).toEqual([]);

    await w.pool.disconnect(X);
    await eventually('W connected on hci0', () =>
      w.pool
        .snapshot()
        .devices.some((d) => d.address === W && d.status === 'connected' && d.adapter === 'hci0'),
    );
    expect(
      events
        .filter((e) => e.type === 'device-assigned' && e.address === W)
        .map((e) => (e as { adapter: string }).adapter),
    ).toEqual(['hci0']);
    const links = w.simLinks();
    expect(links.hci0).toEqual([W]);
    expect([...(links.hci1 ?? [])].sort()).toEqual([Y, Z]);
  });
});

describe('waiting for a slot (simulator)', () => {
  it('no adapter with a free slot: the device keeps its one actor, parked in waiting-for-slot holding nothing, and connects with it when a slot frees', async () => {
    const X = D(1);
    const Y = D(2);
    world = await startPoolWorld({
      // The controller holds 1 link; the pool starts with the default 5 and learns the real limit.
      adapters: [{ name: 'hci0', slotLimit: 1 }],
      devices: [
        peripheral(X, { knownOn: ['hci0'], inRange: ['hci0'] }),
        peripheral(Y, { knownOn: ['hci0'], inRange: ['hci0'] }),
      ],
    });
    const w = world;
    const events = record(w);
    expect((await w.pool.connected(X)).adapter).toBe('hci0');

    const actor = w.pool.connect(Y);
    const seen: string[] = [];
    actor.subscribe((s) => {
      const state = topLevelState((s as { value: Parameters<typeof topLevelState>[0] }).value);
      if (seen[seen.length - 1] !== state) seen.push(state);
    });
    await eventually('Y waits for a slot', () => actor.getSnapshot().value === 'waiting-for-slot');
    expect(events).toContainEqual({ type: 'slot-limit-learned', adapter: 'hci0', limit: 1 });
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'device-requeued', address: Y, from: 'hci0' }),
    );
    await eventually('Y queued', () => w.pool.snapshot().queued.includes(Y));
    // While it waits it holds no slot, no lock and no link.
    expect(w.pool.snapshot().adapters[0]?.inUse).toEqual([X]);
    expect(w.pool.heldLocks).toBe(0);
    expect(busyDeviceLocks()).toEqual([]);
    expect(w.simLinks().hci0).toEqual([X]);

    await w.pool.disconnect(X);
    await eventually('Y connected on hci0', () =>
      w.pool.snapshot().devices.some((d) => d.address === Y && d.status === 'connected'),
    );
    // The same actor, from the queue straight into a new attempt.
    expect(w.pool.child(Y)).toBe(actor);
    expect(actor.getSnapshot().value).toBe('connected');
    const parked = seen.indexOf('waiting-for-slot');
    expect(seen.slice(parked, parked + 2)).toEqual(['waiting-for-slot', 'locking']);
    expect(seen.at(-1)).toBe('connected');
    expect(events.filter((e) => e.type === 'device-failed')).toEqual([]);
    expect(w.simLinks().hci0).toEqual([Y]);
  });
});

describe('adapters and bluetoothd coming and going (simulator)', () => {
  it('adapter removed mid-connection: its devices reconnect on the other adapter; an adapter plugged in later is used at once', async () => {
    const A = D(1); // connected on hci0 when it goes
    const B = D(2); // still connecting on hci0 when it goes
    const F = D(3); // only hci1 hears it
    const C = D(4); // known nowhere yet: waits for a slot
    world = await startPoolWorld(
      {
        adapters: [{ name: 'hci0' }, { name: 'hci1' }],
        devices: [
          peripheral(A),
          peripheral(B),
          peripheral(F, { knownOn: ['hci1'], inRange: ['hci1'] }),
          peripheral(C, { knownOn: [] }),
        ],
        faults: [{ kind: 'connect-latency', target: { device: B, adapter: 'hci0' }, ms: 3000 }],
      },
      { slotsPerAdapter: 3 },
    );
    const w = world;
    const events = record(w);
    // Round-robin: A → hci0, F → hci1, B → hci0 (slow there).
    expect((await w.pool.connected(A)).adapter).toBe('hci0');
    expect((await w.pool.connected(F)).adapter).toBe('hci1');
    w.pool.connect(B);
    await eventually(
      'B connecting on hci0 in bluetoothd',
      () =>
        w.env.sim
          .state()
          .adapters.find((a) => a.name === 'hci0')
          ?.devices.find((d) => d.address === B)?.connecting === true,
    );

    w.env.sim.removeAdapter('hci0');
    await eventually('B connected on hci1', () =>
      w.pool
        .snapshot()
        .devices.some((d) => d.address === B && d.status === 'connected' && d.adapter === 'hci1'),
    );
    expect(events).toContainEqual({
      type: 'device-rotated',
      address: B,
      from: 'hci0',
      to: 'hci1',
      failureClass: null,
    });
    expect(w.pool.snapshot().adapters.find((a) => a.name === 'hci0')?.present).toBe(false);

    // hci1 is full (F, A, B): C waits …
    w.pool.connect(C);
    expect(w.pool.snapshot().queued).toEqual([C]);
    // … until a new adapter is plugged in: it is used at once (C is discovered there).
    w.env.sim.addAdapter({ name: 'hci2' });
    await eventually('C connected on hci2', () =>
      w.pool
        .snapshot()
        .devices.some((d) => d.address === C && d.status === 'connected' && d.adapter === 'hci2'),
    );
    expect(w.simLinks().hci2).toEqual([C]);
  });

  it('bluetoothd restart with 5 connected devices: all 5 connected again, no lock, wait or discovery session left behind', async () => {
    const addresses = [1, 2, 3, 4, 5].map(D);
    world = await startPoolWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: addresses.map((a) => peripheral(a)),
    });
    const w = world;
    const events = record(w);
    await Promise.all(addresses.map((a) => w.pool.connected(a)));
    const firstBus = w.env.sim.state().busName;

    await w.env.sim.restartDaemon({ downMs: 200 });
    await eventually(
      'bluetoothd replaced',
      () => w.env.sim.state().busName !== firstBus && w.env.sim.state().daemonRunning,
    );
    await eventually('all 5 connected again', () => {
      const links = Object.values(w.simLinks()).flat();
      return (
        links.length === 5 && w.pool.snapshot().devices.filter((d) => d.status === 'connected').length === 5
      );
    });
    expect(events.filter((e) => e.type === 'device-link-lost')).toHaveLength(5);
    expect(events.filter((e) => e.type === 'device-failed')).toEqual([]);
    // Each device holds exactly one link, on the adapter the pool accounts for.
    const links = w.simLinks();
    for (const d of w.pool.snapshot().devices) expect(links[d.adapter ?? '']).toContain(d.address);
    expect(Object.values(links).flat().sort()).toEqual([...addresses].sort());
    // Nothing leaked: no device lock held, no mirror wait but each connected child's link watch, no
    // discovery session, no stray child.
    expect(w.pool.heldLocks).toBe(0);
    expect(busyDeviceLocks()).toEqual([]);
    expect(w.bluez.mirror.pendingWaits).toBe(5);
    expect(w.env.sim.state().adapters.flatMap((a) => a.discoveryClients)).toEqual([]);
    // One connection actor per device, one adapter actor per adapter (gone and back: the same actor).
    const children = Object.keys(w.pool.actor.getSnapshot().children);
    expect(children.filter((id) => id.startsWith('device:'))).toHaveLength(5);
    expect(children.filter((id) => id.startsWith('adapter:')).sort()).toEqual([
      'adapter:hci0',
      'adapter:hci1',
    ]);
    // Closing the pool stops the children, and their link watches with them.
    await w.pool.close();
    expect(w.bluez.mirror.pendingWaits).toBe(0);
  });
});
