/**
 * Scenario harness: a private dbus-daemon with the BlueZ simulator, a BluezClient on it, and the
 * connection options every scenario shares (short deadlines, scaled latencies, real timers).
 */
import { openBluez } from '../../src/bluez/client.js';
import type { BluezClient } from '../../src/bluez/client-types.js';
import {
  startSimulatedBluez,
  type DeviceSpec,
  type Scenario,
  type SimulatedBluez,
} from '../../src/testing/index.js';
import type { EstablishOptions } from '../../src/connection/options.js';
import { createStateTrail, type StateTrail } from '../../src/machines/state-trail.js';

export const BATTERY_SERVICE = '0000180f-0000-1000-8000-00805f9b34fb';
export const BATTERY_LEVEL = '00002a19-0000-1000-8000-00805f9b34fb';
export const DEVICE = 'AA:BB:CC:DD:EE:01';

/** A BMS-like peripheral already in bluetoothd's cache on the given adapters. */
export function bms(knownOn: string[] = ['hci0'], address = DEVICE): DeviceSpec {
  return {
    address,
    name: 'bms',
    addressType: 'random',
    rssi: -58,
    knownOn,
    uuids: [BATTERY_SERVICE],
    services: [
      {
        uuid: BATTERY_SERVICE,
        characteristics: [{ uuid: BATTERY_LEVEL, flags: ['read', 'notify'], value: [87] }],
      },
    ],
  };
}

export interface World {
  env: SimulatedBluez;
  bluez: BluezClient;
  stop(): Promise<void>;
}

export async function startWorld(scenario: Scenario): Promise<World> {
  const env = await startSimulatedBluez({ scenario, latencyScale: 0.01 });
  try {
    const bluez = await openBluez({
      busAddress: env.address,
      dbusCallTimeoutMs: 5000,
      disconnectTimeoutMs: 1000,
    });
    return {
      env,
      bluez,
      async stop() {
        await bluez.close();
        await env.stop();
      },
    };
  } catch (err) {
    await env.stop();
    throw err;
  }
}

/** Connection options of the scenarios: generous deadlines for a shared 2-core machine, short backoffs. */
export function scenarioOptions(
  world: World,
  overrides: Partial<EstablishOptions> = {},
): EstablishOptions & { trail: StateTrail } {
  const trail = createStateTrail();
  return {
    address: DEVICE,
    bluez: world.bluez,
    adapters: ['hci0'],
    attemptTimeoutMs: 4000,
    disconnectTimeoutMs: 1000,
    rediscoveryTimeoutMs: 4000,
    lateGattDelaysMs: [100, 200, 400],
    backoffMs: {
      aborted: 20,
      inProgress: 20,
      noReply: 20,
      validation: 20,
      phantom: 50,
      other: 20,
      outOfSlots: 20,
    },
    inspect: trail.inspect,
    trail,
    ...overrides,
  };
}

/** The simulated device on `adapter` (from the simulator's own state, not from our mirror). */
export function simDevice(world: World, adapter: string, address = DEVICE) {
  const a = world.env.sim.state().adapters.find((x) => x.name === adapter);
  return a?.devices.find((d) => d.address === address);
}

/** Device1 calls for the device and Adapter1 RemoveDevice/discovery calls bluetoothd received, optionally on one adapter. */
export function deviceCalls(world: World, adapter?: string, address = DEVICE): string[] {
  const suffix = `dev_${address.replace(/:/g, '_')}`;
  return world.env.sim.calls
    .filter(
      (c) =>
        (c.interface === 'org.bluez.Device1' && c.path.endsWith(suffix)) ||
        (c.interface === 'org.bluez.Adapter1' &&
          ['RemoveDevice', 'StartDiscovery', 'StopDiscovery'].includes(c.member)),
    )
    .filter((c) => adapter === undefined || c.path.startsWith(`/org/bluez/${adapter}`))
    .map((c) => `${c.member}${c.error ? `!${c.error.replace(/^.*\./, '')}` : ''}`);
}

/** Polls until `check` holds; a generous deadline, not a timing assertion. */
export async function eventually(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Records every timer created until `stop()`; `stop()` returns those still pending, the simulator's
 * own included, each with the delay and the creating stack. A leaked deadline shows up here by name.
 */
export function trackTimers(): { stop(): string[] } {
  const live = new Map<ReturnType<typeof setTimeout>, string>();
  const originalSet = globalThis.setTimeout;
  const originalClear = globalThis.clearTimeout;
  const tracked = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = originalSet(
      (...a: unknown[]) => {
        live.delete(timer);
        fn(...a);
      },
      ms,
      ...args,
    );
    live.set(timer, `${ms ?? 0} ms ${new Error().stack?.split('\n').slice(2, 6).join(' | ') ?? ''}`);
    return timer;
  }) as typeof setTimeout;
  globalThis.setTimeout = tracked;
  globalThis.clearTimeout = ((timer: ReturnType<typeof setTimeout> | undefined) => {
    if (timer !== undefined) live.delete(timer);
    originalClear(timer);
  }) as typeof clearTimeout;
  return {
    stop() {
      globalThis.setTimeout = originalSet;
      globalThis.clearTimeout = originalClear;
      return [...live.values()];
    },
  };
}
