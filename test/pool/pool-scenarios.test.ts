/**
 * The adapter pool over the real connection actors and src/bluez, against the BlueZ simulator.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { PoolEmitted } from '../../src/machines/adapter-pool-steps.js';
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
