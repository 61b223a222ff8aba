/**
 * createAdapterPool: options validation before I/O, the reset ladder as the children's `resetting`
 * actor, cancellation of `connected()`, keep-alive off.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { busyDeviceLocks } from '../../src/actors/device-lock.js';
import type { BluezClient } from '../../src/bluez/client-types.js';
import { createAdapterPool } from '../../src/pool/create-adapter-pool.js';
import { eventually, peripheral, startPoolWorld, type PoolWorld } from './sim-harness.js';

const DEV = 'AA:BB:CC:00:00:01';
let world: PoolWorld | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

describe('createAdapterPool options', () => {
  it('rejects bad options with the field name, before any D-Bus traffic', () => {
    const calls: string[] = [];
    const fake = new Proxy(
      {},
      { get: (_, p) => (calls.push(String(p)), () => undefined) },
    ) as unknown as BluezClient;
    expect(() => createAdapterPool({ bluez: fake, slotsPerAdapter: 0 })).toThrow(
      /slotsPerAdapter must be an integer >= 1/,
    );
    expect(() => createAdapterPool({ bluez: fake, slotsPerAdapter: Number.NaN })).toThrow(RangeError);
    expect(() => createAdapterPool({ bluez: fake, strategy: 'random' as never })).toThrow(/strategy/);
    expect(() => createAdapterPool({ bluez: fake, limitReprobeMs: -1 })).toThrow(/limitReprobeMs/);
    expect(() => createAdapterPool({ bluez: undefined as never })).toThrow(/bluez must be a BluezClient/);
    expect(() => createAdapterPool({ bluez: fake, defaults: { maxAttempts: 0 } })).toThrow(/maxAttempts/);
    expect(() =>
      createAdapterPool({ bluez: fake, resetLadder: { steps: { restartBluetoothd: true } } }),
    ).toThrow(/restartCommand/);
    expect(calls.filter((c) => c !== 'connect')).toEqual([]);
  });

  it('connect() validates the address and per-device options before the pool sees them', async () => {
    world = await startPoolWorld({ adapters: [{ name: 'hci0' }], devices: [] });
    const w = world;
    expect(() => w.pool.connect('not-a-mac')).toThrow(/address/);
    expect(() => w.pool.connect(DEV, { attemptTimeoutMs: -1 })).toThrow(/attemptTimeoutMs/);
    expect(w.pool.snapshot().devices).toEqual([]);
  });
});

describe('createAdapterPool behaviour', () => {
  it('a child whose escalation reaches reset runs the ladder (power cycle) and then connects', async () => {
    world = await startPoolWorld(
      {
        adapters: [{ name: 'hci0' }],
        devices: [peripheral(DEV, { knownOn: ['hci0'] })],
        faults: [
          {
            kind: 'fail-connect',
            target: { device: DEV },
            count: 1,
            errorName: 'org.bluez.Error.Failed',
            message: 'Input/output error',
          },
        ],
      },
      {
        defaults: { escalation: { reset: true, resetAfter: 1 } },
        resetLadder: { settleMs: 20, offSettleMs: 20, stepTimeoutMs: 5000 },
      },
    );
    const w = world;
    const connected = await w.pool.connected(DEV);
    expect(connected.adapter).toBe('hci0');
    expect(w.logs).toContain('info: powerCycle on hci0: Powered false → true, verified');
    expect(w.logs).toContain('info: hci0 recovered');
    const powerWrites = w.env.sim.calls.filter(
      (c) => c.interface === 'org.freedesktop.DBus.Properties' && c.member === 'Set',
    );
    expect(powerWrites.length).toBeGreaterThanOrEqual(2);
  });

  it('connected() rejects with the AbortError when cancelled and the device leaves the pool', async () => {
    world = await startPoolWorld({
      adapters: [{ name: 'hci0' }],
      devices: [peripheral(DEV, { knownOn: ['hci0'] })],
      faults: [{ kind: 'connect-latency', target: { device: DEV }, ms: 3000 }],
    });
    const w = world;
    const controller = new AbortController();
    const pending = w.pool.connected(DEV, { signal: controller.signal });
    await eventually('connecting', () => w.pool.snapshot().devices.some((d) => d.status === 'connecting'));
    controller.abort(new DOMException('stop', 'AbortError'));
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await eventually('device left the pool', () => w.pool.snapshot().devices.length === 0);
    await eventually('no link left in bluetoothd', () => Object.values(w.simLinks()).flat().length === 0);
    expect(w.pool.heldLocks).toBe(0);
    expect(busyDeviceLocks()).toEqual([]);
  });

  it('keepAlive off: a dropped link removes the device instead of reconnecting it', async () => {
    world = await startPoolWorld({
      adapters: [{ name: 'hci0' }],
      devices: [peripheral(DEV, { knownOn: ['hci0'] })],
    });
    const w = world;
    await w.pool.connected(DEV, { keepAlive: false });
    w.env.sim.dropLink(DEV);
    await eventually('device removed', () => w.pool.snapshot().devices.length === 0);
    // No connection actor is left; the adapter actor of hci0 stays (one per Adapter1).
    expect(Object.keys(w.pool.actor.getSnapshot().children)).toEqual(['adapter:hci0']);
  });
});
