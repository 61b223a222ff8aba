/**
 * `pool.connected()` called for many devices at once admits them a few per macrotask (the rest
 * wait for a later one, in call order), so that the caller's loop is not one long synchronous
 * block; a call aborted while it waits for its turn never joins the pool.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { peripheral, startPoolWorld, type PoolWorld } from './sim-harness.js';

const addr = (i: number) => `AA:BB:CC:00:01:${i.toString(16).padStart(2, '0').toUpperCase()}`;
let world: PoolWorld | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

describe('pool.connected() for many devices at once', () => {
  it('20 calls in one go: 8 devices join at once, the others in later turns in call order, all 20 connect', async () => {
    const devices = Array.from({ length: 20 }, (_, i) => peripheral(addr(i)));
    world = await startPoolWorld(
      { adapters: [{ name: 'hci0' }, { name: 'hci1' }], devices },
      { slotsPerAdapter: 10 },
    );
    const w = world;
    const joined: string[] = [];
    w.pool.actor.on('device-queued', (e) => joined.push(e.address));
    const calls = devices.map((d) => w.pool.connected(d.address));
    // Synchronously after the 20 calls: the first eight are in the pool (each with its actor).
    expect(w.pool.snapshot().devices.map((d) => d.address)).toEqual(
      devices.slice(0, 8).map((d) => d.address),
    );
    expect(w.pool.child(addr(8))).toBeUndefined();
    const results = await Promise.all(calls);
    expect(results.map((r) => r.address)).toEqual(devices.map((d) => d.address));
    // They joined in call order.
    expect(joined.filter((a, i) => joined.indexOf(a) === i)).toEqual(devices.map((d) => d.address));
    expect(w.pool.snapshot().devices.filter((d) => d.status === 'connected')).toHaveLength(20);
  });

  it('a call aborted while it waits for its turn rejects with the reason and never joins the pool', async () => {
    const devices = Array.from({ length: 9 }, (_, i) => peripheral(addr(i)));
    world = await startPoolWorld({ adapters: [{ name: 'hci0' }], devices }, { slotsPerAdapter: 9 });
    const w = world;
    const abort = new AbortController();
    const first = devices.slice(0, 8).map((d) => w.pool.connected(d.address));
    const ninth = w.pool.connected(addr(8), { signal: abort.signal });
    abort.abort(new Error('changed my mind'));
    await expect(ninth).rejects.toThrow('changed my mind');
    await Promise.all(first);
    expect(w.pool.child(addr(8))).toBeUndefined();
    expect(w.pool.snapshot().devices.map((d) => d.address)).not.toContain(addr(8));
    expect(w.simLinks().hci0).not.toContain(addr(8));
  });
});
