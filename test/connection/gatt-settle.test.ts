/**
 * When a connected device's GATT tree counts as settled for the late-GATT re-check: soon after a
 * burst of additions (a late-GATT peripheral: nothing can vanish under the validator), only after
 * the long quiet once anything was removed (a Service Changed: bluetoothd 5.66 removes the old
 * objects one by one and exports the new tree ≈130 ms later).
 *
 * The long quiet is set far above the short one, so the two rules are told apart by bounds that
 * hold by construction (a timer never fires early), not by how fast this machine is.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openBluez } from '../../src/bluez/client.js';
import type { BluezClient } from '../../src/bluez/client-types.js';
import { waitGattSettled } from '../../src/actors/gatt-settle.js';
import { startSimulatedBluez, type SimulatedBluez } from '../../src/testing/index.js';
import { bms, eventually } from '../testing/fixtures.js';

const DEVICE = 'AA:BB:CC:DD:EE:01';
const LONG_QUIET_MS = 4000;

let env: SimulatedBluez | undefined;
let bluez: BluezClient | undefined;

afterEach(async () => {
  await bluez?.close();
  await env?.stop();
  bluez = undefined;
  env = undefined;
});

async function connected(lateGattMs?: number): Promise<{ env: SimulatedBluez; bluez: BluezClient }> {
  env = await startSimulatedBluez({
    latencyScale: 0.05,
    timing: { serviceChangedRemovalMs: 80, serviceChangedExportMs: 130 },
    scenario: { adapters: [{ name: 'hci0' }], devices: [bms(DEVICE, { knownOn: ['hci0'] })] },
  });
  if (lateGattMs !== undefined)
    env.sim.inject({ kind: 'late-gatt', target: { device: DEVICE }, ms: lateGattMs });
  bluez = await openBluez({ busAddress: env.address });
  const client = bluez;
  await client.connect('hci0', DEVICE, { timeoutMs: 10_000 });
  await eventually('services resolved', () => client.device('hci0', DEVICE)?.servicesResolved === true);
  return { env, bluez: client };
}

/** performance.now() of the last GATT object added or removed under the device. */
function lastGattChange(client: BluezClient): { at: () => number; removals: () => number; off: () => void } {
  let at = 0;
  let removals = 0;
  const off = client.mirror.on('change', (c) => {
    if (!c.path.includes('/service') || c.type === 'propertiesChanged') return;
    at = performance.now();
    if (c.type === 'interfacesRemoved') removals += 1;
  });
  return { at: () => at, removals: () => removals, off };
}

describe('the GATT tree settles', () => {
  it('late services only added: settled soon after the burst, not after the long quiet', async () => {
    const { bluez: client } = await connected(300);
    expect(client.gattServices('hci0', DEVICE)).toEqual([]);
    const changes = lastGattChange(client);
    const outcome = await waitGattSettled(client, 'hci0', DEVICE, {
      untilMs: performance.now() + 20_000,
      quietMs: LONG_QUIET_MS,
      signal: new AbortController().signal,
    });
    const settledAt = performance.now();
    changes.off();
    expect(outcome).toBe('settled');
    expect(changes.removals()).toBe(0);
    expect(client.gattServices('hci0', DEVICE).length).toBeGreaterThan(0);
    // The removal rule would have waited LONG_QUIET_MS after the last addition.
    expect(settledAt - changes.at()).toBeLessThan(LONG_QUIET_MS / 2);
  });

  it('a Service Changed (objects removed, then the new tree): settled only after the long quiet', async () => {
    const { env: world, bluez: client } = await connected();
    const before = client.gattServices('hci0', DEVICE).length;
    const changes = lastGattChange(client);
    const quietMs = 600;
    const waiting = waitGattSettled(client, 'hci0', DEVICE, {
      untilMs: performance.now() + 20_000,
      quietMs,
      signal: new AbortController().signal,
    });
    world.sim.addService(DEVICE, {
      uuid: '0000feed-0000-1000-8000-00805f9b34fb',
      characteristics: [{ uuid: '0000beef-0000-1000-8000-00805f9b34fb', flags: ['read'], value: [1] }],
    });
    const outcome = await waiting;
    const settledAt = performance.now();
    changes.off();
    expect(outcome).toBe('settled');
    expect(changes.removals()).toBeGreaterThan(0);
    // Every object of the new tree arrived before it counted as settled.
    expect(client.gattServices('hci0', DEVICE).length).toBe(before + 1);
    // A timer never fires early (1 ms for the clock's rounding).
    expect(settledAt - changes.at()).toBeGreaterThanOrEqual(quietMs - 1);
  });
});
