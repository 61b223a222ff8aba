/**
 * A late service under a Service Changed, as bluetoothd 5.66 delivers it (recorded in the
 * real-BlueZ tier): the peripheral adds the service the validator needs right after the link came
 * up; bluetoothd removes the old service's objects one by one over ≈80 ms and exports the new tree
 * ≈130 ms after the last removal. The late-GATT wait is a time budget with re-validation once the
 * tree has settled, so the connection is made in the same attempt, soon after the export.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openBluez } from '../../src/bluez/client.js';
import type { BluezClient } from '../../src/bluez/client-types.js';
import { establishConnection, type ManagedConnection } from '../../src/connection/establish.js';
import { characteristicExists } from '../../src/connection/validators.js';
import { startSimulatedBluez, type SimulatedBluez } from '../../src/testing/index.js';
import { LATE_CHAR_UUID, LATE_SERVICE_UUID, PERIPHERAL_ADDRESS } from '../conformance/peripheral-spec.js';
import { SIMULATED_PERIPHERAL } from '../conformance/sim-target.js';

let env: SimulatedBluez | undefined;
let bluez: BluezClient | undefined;
let conn: ManagedConnection | undefined;

afterEach(async () => {
  await conn?.disconnect();
  await bluez?.close();
  await env?.stop();
  conn = undefined;
  bluez = undefined;
  env = undefined;
});

describe('late service under a real-shaped Service Changed', () => {
  it('connected in ONE attempt, within 0.5 s of the characteristic being exported', async () => {
    env = await startSimulatedBluez({
      latencyScale: 0.05,
      // bluetoothd 5.66's Service Changed timing as measured on the real tier, not scaled down.
      timing: { serviceChangedRemovalMs: 80, serviceChangedExportMs: 130 },
      scenario: {
        adapters: [{ name: 'hci0' }],
        devices: [{ ...SIMULATED_PERIPHERAL, knownOn: ['hci0'] }],
      },
    });
    const sim = env.sim;
    bluez = await openBluez({ busAddress: env.address });
    const watcher = bluez;
    let exportedAt: number | undefined;
    const removals: string[] = [];
    const off = watcher.mirror.on('change', (c) => {
      if (c.type === 'interfacesRemoved' && c.path.includes('/service')) removals.push(c.path);
      if (
        exportedAt === undefined &&
        c.type === 'interfacesAdded' &&
        watcher.mirror.characteristic(c.path)?.uuid.toLowerCase() === LATE_CHAR_UUID
      ) {
        exportedAt = performance.now();
      }
    });
    let connectedAt: number | undefined;
    let added = false;
    const needsLate = characteristicExists(LATE_CHAR_UUID);
    try {
      conn = await establishConnection({
        address: PERIPHERAL_ADDRESS,
        bluez,
        adapters: ['hci0'],
        maxAttempts: 1,
        attemptTimeoutMs: 20_000,
        lateGattDelaysMs: [2000, 4000, 8000],
        validate: (v) => {
          if (!added) {
            // The link is up and resolved; the peripheral changes its database now.
            added = true;
            sim.addService(PERIPHERAL_ADDRESS, {
              uuid: LATE_SERVICE_UUID,
              characteristics: [{ uuid: LATE_CHAR_UUID, flags: ['read'], value: [7] }],
            });
          }
          return needsLate(v);
        },
        inspect: (e) => {
          if (e.type !== '@xstate.snapshot' || connectedAt !== undefined) return;
          const value = (e.snapshot as { value?: unknown }).value;
          if (value === 'connected') connectedAt = performance.now();
        },
      });
    } finally {
      off();
    }
    // The old service went object by object (2 characteristics, 1 descriptor, the service).
    expect(removals).toHaveLength(4);
    expect(conn.attempts).toHaveLength(1);
    expect(exportedAt).toBeDefined();
    expect(connectedAt).toBeDefined();
    expect((connectedAt ?? 0) - (exportedAt ?? 0)).toBeLessThan(500);
    expect(connectedAt).toBeGreaterThan(exportedAt ?? Infinity);
  }, 30_000);
});
