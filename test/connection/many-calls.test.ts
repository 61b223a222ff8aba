/**
 * 300 establishConnection calls at once on one client, over the simulator on a private dbus-daemon
 * with the system bus's stock limits (max_replies_per_connection 128: dbus's bus/system.conf.in).
 * Every call ends connected or with a typed error that lists its attempts, and afterwards BlueZ holds
 * no link the library does not hold (the mirror agrees with the simulator).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBluez } from '../../src/bluez/client.js';
import type { BluezClient } from '../../src/bluez/client-types.js';
import { BluezError, ConnectionFailedError } from '../../src/bluez/errors.js';
import { establishConnection, type ManagedConnection } from '../../src/connection/establish.js';
import { startSimulatedBluez, type DeviceSpec, type SimulatedBluez } from '../../src/testing/index.js';
import { BATTERY_LEVEL, BATTERY_SERVICE, eventually } from './harness.js';
import { daemonStats } from '../bluez/helpers.js';
import { acquireBus } from '../../src/bluez/bus.js';

const N = 300;
const ADAPTERS = 8;

function address(i: number): string {
  const hex = i.toString(16).padStart(4, '0').toUpperCase();
  return `C0:FF:EE:00:${hex.slice(0, 2)}:${hex.slice(2)}`;
}

function adapterOf(i: number): string {
  return `hci${i % ADAPTERS}`;
}

/** Devices whose every Connect fails, and devices that connect but fail validation. */
const refusesConnect = (i: number): boolean => i % 20 === 3;
const failsValidation = (i: number): boolean => i % 20 === 7;

function device(i: number): DeviceSpec {
  return {
    address: address(i),
    name: `dev-${i}`,
    addressType: 'random',
    rssi: -60,
    knownOn: [adapterOf(i)],
    uuids: [BATTERY_SERVICE],
    services: [
      {
        uuid: BATTERY_SERVICE,
        characteristics: [{ uuid: BATTERY_LEVEL, flags: ['read', 'notify'], value: [87] }],
      },
    ],
  };
}

describe('300 concurrent establishConnection calls on one client (stock bus limits)', () => {
  let env: SimulatedBluez;
  let bluez: BluezClient;

  beforeAll(async () => {
    env = await startSimulatedBluez({
      latencyScale: 0.01,
      // dbus-daemon's built-in default, stated: the stock system bus's limit.
      bus: { limits: { max_replies_per_connection: 128 } },
      scenario: {
        adapters: Array.from({ length: ADAPTERS }, (_, k) => ({ name: `hci${k}`, slotLimit: 64 })),
        devices: Array.from({ length: N }, (_, i) => device(i)),
        // Some devices never connect, so that rejections happen among the 300.
        faults: Array.from({ length: N }, (_, i) => i)
          .filter(refusesConnect)
          .map((i) => ({
            kind: 'fail-connect' as const,
            target: { device: address(i) },
            count: 1000,
            errorName: 'org.bluez.Error.Failed',
            message: 'Input/output error',
          })),
      },
    });
    bluez = await openBluez({
      busAddress: env.address,
      dbusCallTimeoutMs: 10_000,
      disconnectTimeoutMs: 2000,
    });
  }, 60_000);

  afterAll(async () => {
    await bluez?.close();
    await env?.stop();
  });

  it('ends each call connected or with a typed error carrying its attempts, and leaves no link BlueZ holds that the library does not', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: N }, (_, i) =>
        establishConnection({
          address: address(i),
          bluez,
          adapters: [adapterOf(i)],
          maxAttempts: 3,
          attemptTimeoutMs: 20_000,
          disconnectTimeoutMs: 2000,
          rediscoveryTimeoutMs: 5000,
          lateGattDelaysMs: [],
          backoffMs: { other: 20, noReply: 20, aborted: 20, inProgress: 20, validation: 20 },
          validate: () => !failsValidation(i),
        }),
      ),
    );
    const held = new Map<string, ManagedConnection>();
    const untyped: string[] = [];
    const causes: string[] = [];
    const byCode = new Map<string, number>();
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') {
        held.set(address(i), r.value);
        return;
      }
      const err: unknown = r.reason;
      const typed = err instanceof BluezError && err.attempts.length > 0;
      const code = err instanceof BluezError ? err.code : `untyped ${(err as Error)?.name}`;
      byCode.set(code, (byCode.get(code) ?? 0) + 1);
      if (err instanceof BluezError) causes.push(err.attempts.map((a) => a.code).join('>'));
      if (!typed) untyped.push(`${address(i)}: ${String(err)}`);
    });
    // Exactly the faulty devices reject, each after its 3 attempts.
    const expectedFailures = Array.from({ length: N }, (_, i) => i).filter(
      (i) => refusesConnect(i) || failsValidation(i),
    );
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(expectedFailures.length);
    for (const i of expectedFailures) {
      const r = results[i];
      expect(r?.status).toBe('rejected');
      if (r?.status === 'rejected') {
        expect(r.reason).toBeInstanceOf(ConnectionFailedError);
        expect((r.reason as ConnectionFailedError).attempts).toHaveLength(3);
      }
    }
    const summary =
      `connected ${held.size}/${N}; rejections ${JSON.stringify([...byCode])}; ` +
      `attempt codes of rejections: ${causes.slice(0, 5).join(' ')}`;
    expect(untyped, summary).toEqual([]);

    // BlueZ's own view (the simulator's state), against the library's and the mirror's.
    const simConnected = (): string[] =>
      env.sim
        .state()
        .adapters.flatMap((a) => a.devices.filter((d) => d.connected).map((d) => `${a.name}/${d.address}`));
    const orphans = simConnected().filter((link) => !held.has(link.slice(link.indexOf('/') + 1)));
    expect(orphans, summary).toEqual([]);
    for (const [mac, connection] of held) {
      expect(simConnected()).toContain(`${connection.adapter}/${mac}`);
    }
    const disagreements = (): string[] =>
      Array.from({ length: N }, (_, i) => i)
        .filter((i) => (bluez.device(adapterOf(i), address(i))?.connected ?? false) !== held.has(address(i)))
        .map((i) => `${address(i)} mirror ${String(bluez.device(adapterOf(i), address(i))?.connected)}`);
    await eventually('the mirror shows exactly the held links', () => disagreements().length === 0).catch(
      (err: unknown) => {
        throw new Error(`${String(err)}: ${disagreements().slice(0, 5).join(', ')}`);
      },
    );

    const closed = await Promise.allSettled([...held.values()].map((c) => c.disconnect()));
    const failedCloses = closed.filter((r) => r.status === 'rejected').map((r) => String(r.reason));
    expect(failedCloses.slice(0, 3), `${failedCloses.length} disconnects rejected`).toEqual([]);
    await eventually('BlueZ holds no link after every disconnect', () => simConnected().length === 0).catch(
      (err: unknown) => {
        throw new Error(`${String(err)}: ${simConnected().length} links left`);
      },
    );
    expect(bluez.mirror.adapters().length).toBe(ADAPTERS);
    // Nothing the calls added stays behind on the bus: only the mirror's own match rules remain.
    const stats = await daemonStats(env.address);
    const ours = stats.rulesByConnection.get(bluez.uniqueName ?? '') ?? [];
    expect(ours.length, ours.join('\n')).toBeLessThanOrEqual(4);
    // The same shared connection the client uses: the bound held and the daemon refused nothing.
    const bus = acquireBus(env.address);
    try {
      console.log(
        `[many-calls] ${summary}; peak in flight ${bus.peakInFlight}/${bus.maxInFlightCalls}; ` +
          `LimitsExceeded ${bus.limitsExceeded}; calls sent ${bus.sentCalls}`,
      );
      expect(bus.peakInFlight).toBeLessThanOrEqual(bus.maxInFlightCalls);
      expect(bus.limitsExceeded).toBe(0);
      expect(bus.pendingCount).toBe(0);
      expect(bus.queuedCount).toBe(0);
    } finally {
      await bus.release();
    }
  }, 240_000);
});
