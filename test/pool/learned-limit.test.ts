/**
 * The pool learns a controller's real link limit, on the simulator: from the links BlueZ shows, not
 * from its own reservations, and not from an ordinary RF abort.
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

describe('learned slot limit (simulator)', () => {
  it('controller limit 4, pool configured 7: an RF abort on another device does not lower it, the refusals at 4 real links teach exactly 4', async () => {
    const only0 = { knownOn: ['hci0'], inRange: ['hci0'] };
    world = await startPoolWorld(
      {
        adapters: [{ name: 'hci0', slotLimit: 4 }],
        devices: [1, 2, 3, 4, 5, 6].map((n) => peripheral(D(n), only0)),
      },
      { slotsPerAdapter: 7 },
    );
    const w = world;
    const events: PoolEmitted[] = [];
    w.pool.actor.on('*', (e) => events.push(e as PoolEmitted));
    const limits = () => events.filter((e) => e.type === 'slot-limit-learned');

    for (const d of [D(2), D(3), D(4)]) await w.pool.connected(d);
    // D1's connect is aborted once by the radio while 3 links are up: an ordinary RF abort.
    w.env.sim.inject({ kind: 'rf-abort', target: { device: D(1) }, count: 1, linkUpMs: 10 });
    await w.pool.connected(D(1));
    expect(limits()).toEqual([]);
    expect(w.simLinks().hci0).toHaveLength(4);

    // D5 and D6 are sent to hci0 (4 < 7) and refused by the controller at 4 real links, while each
    // of them is also a reservation of the pool: the limit is 4, not 5 or 6.
    w.pool.connect(D(5));
    w.pool.connect(D(6));
    await eventually('both wait for a slot', () => {
      const queued = w.pool.snapshot().queued;
      return queued.includes(D(5)) && queued.includes(D(6));
    });
    expect(limits()).toEqual([{ type: 'slot-limit-learned', adapter: 'hci0', limit: 4 }]);
    expect(w.pool.snapshot().adapters.find((a) => a.name === 'hci0')?.limit).toBe(4);
    expect(w.simLinks().hci0?.sort()).toEqual([D(1), D(2), D(3), D(4)]);

    // A link goes: one of the waiting devices gets it, and the limit stays 4.
    await w.pool.disconnect(D(2));
    await eventually('a waiting device connected', () =>
      w.pool
        .snapshot()
        .devices.some((d) => (d.address === D(5) || d.address === D(6)) && d.status === 'connected'),
    );
    expect(w.simLinks().hci0).toHaveLength(4);
    expect(limits()).toEqual([{ type: 'slot-limit-learned', adapter: 'hci0', limit: 4 }]);
  }, 60_000);
});
