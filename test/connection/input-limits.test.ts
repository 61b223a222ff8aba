/**
 * Input that used to get past validation and hurt later: timeouts beyond what a Node timer can
 * hold (Node turns them into 1 ms), a look-alike AbortSignal given to the pool, and a logger that
 * throws from inside the library's event delivery.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openBluez } from '../../src/bluez/client.js';
import { MAX_TIMER_MS } from '../../src/bluez/validate.js';
import { createConnectionActor, establishConnection } from '../../src/connection/establish.js';
import { resolveOptions } from '../../src/connection/options.js';
import { createAdapterPool } from '../../src/pool/create-adapter-pool.js';
import { DEVICE, bms, deviceCalls, scenarioOptions, startWorld, type World } from './harness.js';
import { peripheral, startPoolWorld, type PoolWorld } from '../pool/sim-harness.js';

let world: World | undefined;
let poolWorld: PoolWorld | undefined;
afterEach(async () => {
  await world?.stop();
  await poolWorld?.stop();
  world = undefined;
  poolWorld = undefined;
});

const TOO_LONG = 2 ** 31;

describe('timeouts beyond the platform timer range', () => {
  it.each(['attemptTimeoutMs', 'overallTimeoutMs', 'disconnectTimeoutMs', 'rediscoveryTimeoutMs'] as const)(
    '%s = 2**31 is refused naming the field, and the largest timer value is taken',
    (field) => {
      expect(() => resolveOptions({ address: DEVICE, [field]: TOO_LONG })).toThrow(
        new RegExp(`${field} must be at most ${MAX_TIMER_MS} ms`),
      );
      expect(() => resolveOptions({ address: DEVICE, [field]: TOO_LONG })).toThrow(RangeError);
      expect(resolveOptions({ address: DEVICE, [field]: MAX_TIMER_MS })[field]).toBe(MAX_TIMER_MS);
    },
  );

  it('backoff, late-GATT delays and the bus deadlines are bounded the same way', async () => {
    expect(() => resolveOptions({ address: DEVICE, backoffMs: { aborted: TOO_LONG } })).toThrow(
      /backoffMs\.aborted must be at most/,
    );
    expect(() => resolveOptions({ address: DEVICE, lateGattDelaysMs: [100, TOO_LONG] })).toThrow(
      /lateGattDelaysMs\[1\] must be at most/,
    );
    await expect(
      openBluez({ busAddress: 'unix:path=/nonexistent', dbusCallTimeoutMs: TOO_LONG }),
    ).rejects.toThrow(/dbusCallTimeoutMs must be at most/);
  });

  it('establishConnection with attemptTimeoutMs 2**31 rejects before any D-Bus call', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    const before = world.env.sim.calls.length;
    await expect(
      establishConnection({ ...scenarioOptions(world), attemptTimeoutMs: TOO_LONG }),
    ).rejects.toThrow(/attemptTimeoutMs must be at most/);
    expect(world.env.sim.calls.length).toBe(before);
    expect(deviceCalls(world)).toEqual([]);
  });

  it('the pool refuses limitReprobeMs beyond the timer range', async () => {
    poolWorld = await startPoolWorld({ adapters: [{ name: 'hci0' }], devices: [] });
    const bluez = poolWorld.bluez;
    expect(() => createAdapterPool({ bluez, limitReprobeMs: TOO_LONG })).toThrow(
      /limitReprobeMs must be at most/,
    );
  });
});

describe('a look-alike AbortSignal given to pool.connected()', () => {
  it('is refused naming the field; no actor is created and BlueZ receives no Connect', async () => {
    const mac = 'AA:BB:CC:00:00:07';
    poolWorld = await startPoolWorld({ adapters: [{ name: 'hci0' }], devices: [peripheral(mac)] });
    const pool = poolWorld.pool;
    await expect(pool.connected(mac, { signal: {} as AbortSignal })).rejects.toThrow(
      /signal must be an AbortSignal/,
    );
    await expect(pool.connected(mac, null as never)).rejects.toThrow(/options must be an object/);
    expect(pool.child(mac)).toBeUndefined();
    expect(pool.snapshot().devices).toEqual([]);
    expect(poolWorld.env.sim.calls.filter((c) => c.member === 'Connect')).toEqual([]);
  });
});

describe('a logger that throws', () => {
  const throwing = {
    debug: () => {
      throw new Error('debug sink is down');
    },
    info: () => {
      throw new Error('info sink is down');
    },
    warn: () => {
      throw new Error('warn sink is down');
    },
  };

  it('does not stop a connection that logs an escalation on the way (RF abort on attempt 1)', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }],
      devices: [bms()],
      faults: [{ kind: 'rf-abort', target: { device: DEVICE }, count: 1 }],
    });
    const connection = await establishConnection({ ...scenarioOptions(world), logger: throwing });
    expect(connection.attempts.map((a) => a.outcome)).toEqual(['failed', 'connected']);
    await connection.disconnect();
  });

  it('a logger method that is not a function is refused naming it, before any I/O', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    const options = { ...scenarioOptions(world), bluez: world.bluez, logger: { warn: 'loud' } as never };
    expect(() => createConnectionActor(options)).toThrow(/logger\.warn must be a function/);
    expect(deviceCalls(world)).toEqual([]);
  });
});
