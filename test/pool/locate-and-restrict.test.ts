/**
 * The pool and a device no adapter knows (after a bluetoothd restart, or never seen): its search
 * runs on every adapter at once, and the attempt goes to the adapter that hears it. And the pool's
 * adapter allow-list / exclude-list.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createAdapterPool } from '../../src/pool/create-adapter-pool.js';
import type { PoolEmitted } from '../../src/machines/adapter-pool-steps.js';
import { peripheral, startPoolWorld, type PoolWorld } from './sim-harness.js';

const DEV = 'AA:BB:CC:00:00:21';
let world: PoolWorld | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

describe('pool: a device no adapter knows', () => {
  it('heard only by hci1 while round-robin picks hci0: found in one search on both, connected on hci1 long before one search on hci0 alone would end', async () => {
    world = await startPoolWorld(
      {
        adapters: [{ name: 'hci0' }, { name: 'hci1' }],
        devices: [peripheral(DEV, { knownOn: [], inRange: ['hci1'] })],
      },
      { defaults: { rediscoveryTimeoutMs: 10_000, attemptTimeoutMs: 15_000 } },
    );
    const { pool, env } = world;
    const events: PoolEmitted[] = [];
    const sub = pool.actor.on('*', (e) => events.push(e as PoolEmitted));
    const started = performance.now();
    const connected = await pool.connected(DEV, { signal: AbortSignal.timeout(30_000) });
    const tookMs = performance.now() - started;
    sub.unsubscribe();
    expect(connected.adapter).toBe('hci1');
    expect(events.filter((e) => e.type === 'device-assigned')).toEqual([
      { type: 'device-assigned', address: DEV, adapter: 'hci0' },
    ]);
    expect(events).toContainEqual({
      type: 'device-rotated',
      address: DEV,
      from: 'hci0',
      to: 'hci1',
      failureClass: 'notFound',
    });
    // Discovery ran on both adapters at once (one search), and no Connect went to hci0.
    const starts = env.sim.calls.filter((c) => c.member === 'StartDiscovery').map((c) => c.path);
    expect(new Set(starts)).toEqual(new Set(['/org/bluez/hci0', '/org/bluez/hci1']));
    expect(env.sim.calls.filter((c) => c.member === 'Connect').map((c) => c.path)).toEqual([
      `/org/bluez/hci1/dev_${DEV.replace(/:/g, '_')}`,
    ]);
    // A search on hci0 alone would only give up after rediscoveryTimeoutMs (10 s).
    expect(tookMs).toBeLessThan(10_000);
    await expect
      .poll(() => world?.bluez.adapters().some((a) => a.discovering), { timeout: 5000 })
      .toBe(false);
  }, 40_000);
});

describe('pool: adapter allow-list and exclude-list', () => {
  it('adapters: ["hci1"] — the pool uses hci1 only, although hci0 knows the device too', async () => {
    world = await startPoolWorld(
      { adapters: [{ name: 'hci0' }, { name: 'hci1' }], devices: [peripheral(DEV)] },
      { adapters: ['hci1'] },
    );
    const connected = await world.pool.connected(DEV, { signal: AbortSignal.timeout(20_000) });
    expect(connected.adapter).toBe('hci1');
    expect(world.pool.snapshot().adapters.map((a) => a.name)).toEqual(['hci1']);
  });

  it('excludeAdapters: ["hci0"] — the pool never uses hci0', async () => {
    world = await startPoolWorld(
      { adapters: [{ name: 'hci0' }, { name: 'hci1' }], devices: [peripheral(DEV)] },
      { excludeAdapters: ['hci0'] },
    );
    const connected = await world.pool.connected(DEV, { signal: AbortSignal.timeout(20_000) });
    expect(connected.adapter).toBe('hci1');
    expect(world.env.sim.calls.filter((c) => c.path.startsWith('/org/bluez/hci0/'))).toEqual([]);
  });

  it('bad lists are refused before any I/O, naming the field', async () => {
    world = await startPoolWorld({ adapters: [{ name: 'hci0' }], devices: [] });
    const bluez = world.bluez;
    const calls = world.env.sim.calls.length;
    expect(() => createAdapterPool({ bluez, adapters: ['usb0'] })).toThrow(/adapters\[0\]/);
    expect(() => createAdapterPool({ bluez, adapters: [] })).toThrow(RangeError);
    expect(() => createAdapterPool({ bluez, adapters: ['hci0', 'hci0'] })).toThrow(/must not repeat/);
    expect(() => createAdapterPool({ bluez, excludeAdapters: 'hci0' as unknown as string[] })).toThrow(
      TypeError,
    );
    expect(() => createAdapterPool({ bluez, adapters: ['hci0'], excludeAdapters: ['hci0'] })).toThrow(
      /removes every adapter/,
    );
    expect(world.env.sim.calls.length).toBe(calls);
  });
});
