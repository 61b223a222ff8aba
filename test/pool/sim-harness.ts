/**
 * The pool against the BlueZ simulator: a private dbus-daemon, the simulator with scaled latencies,
 * a BluezClient, and pool defaults with short deadlines (real timers; generous waits).
 */
import { openBluez } from '../../src/bluez/client.js';
import type { BluezClient } from '../../src/bluez/client-types.js';
import {
  startSimulatedBluez,
  type DeviceSpec,
  type Scenario,
  type SimulatedBluez,
} from '../../src/testing/index.js';
import {
  createAdapterPool,
  type AdapterPool,
  type AdapterPoolOptions,
} from '../../src/pool/create-adapter-pool.js';

export const BATTERY_SERVICE = '0000180f-0000-1000-8000-00805f9b34fb';
export const BATTERY_LEVEL = '00002a19-0000-1000-8000-00805f9b34fb';

/** A peripheral with one readable service, in bluetoothd's cache on `knownOn`. */
export function peripheral(address: string, extra: Partial<DeviceSpec> = {}): DeviceSpec {
  return {
    address,
    name: `dev-${address.slice(-2)}`,
    addressType: 'random',
    rssi: -60,
    knownOn: ['hci0', 'hci1'],
    uuids: [BATTERY_SERVICE],
    services: [
      {
        uuid: BATTERY_SERVICE,
        characteristics: [{ uuid: BATTERY_LEVEL, flags: ['read', 'notify'], value: [87] }],
      },
    ],
    ...extra,
  };
}

export interface PoolWorld {
  env: SimulatedBluez;
  bluez: BluezClient;
  pool: AdapterPool;
  /** Log lines the pool wrote (level: message). */
  logs: string[];
  /** Connected devices per adapter, as the simulator itself says. */
  simLinks(): Record<string, string[]>;
  stop(): Promise<void>;
}

export async function startPoolWorld(
  scenario: Scenario,
  options: Omit<AdapterPoolOptions, 'bluez'> = {},
): Promise<PoolWorld> {
  const env = await startSimulatedBluez({ scenario, latencyScale: 0.01 });
  let bluez: BluezClient | undefined;
  try {
    bluez = await openBluez({ busAddress: env.address, dbusCallTimeoutMs: 5000, disconnectTimeoutMs: 1000 });
    const logs: string[] = [];
    const line = (level: string) => (_fields: unknown, message: string) => logs.push(`${level}: ${message}`);
    const pool = createAdapterPool({
      bluez,
      logger: { info: line('info'), warn: line('warn'), error: line('error') },
      ...options,
      defaults: {
        attemptTimeoutMs: 4000,
        disconnectTimeoutMs: 1000,
        rediscoveryTimeoutMs: 4000,
        lateGattDelaysMs: [100, 200],
        backoffMs: {
          aborted: 20,
          inProgress: 20,
          noReply: 20,
          notFound: 100,
          other: 20,
          outOfSlots: 50,
          bluezGone: 200,
        },
        ...options.defaults,
      },
    });
    const client = bluez;
    return {
      env,
      bluez: client,
      pool,
      logs,
      simLinks() {
        const out: Record<string, string[]> = {};
        for (const a of env.sim.state().adapters) {
          out[a.name] = a.devices.filter((d) => d.connected).map((d) => d.address);
        }
        return out;
      },
      async stop() {
        await pool.close();
        await client.close();
        await env.stop();
      },
    };
  } catch (err) {
    await bluez?.close();
    await env.stop();
    throw err;
  }
}

/** Polls until `check` holds; a generous deadline, not a timing assertion. */
export async function eventually(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
