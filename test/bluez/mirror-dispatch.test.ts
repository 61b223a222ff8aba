/**
 * The mirror's indexes and per-object dispatch, on the simulator over a private dbus-daemon: a
 * wait or a notification subscription for one device is not run when other devices change, the
 * indexed queries agree with the tree, and nothing is left registered afterwards.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openBluez } from '../../src/bluez/client.js';
import type { BluezClient } from '../../src/bluez/client-types.js';
import { devicePath } from '../../src/bluez/validate.js';
import { startSimulatedBluez, type DeviceSpec } from '../../src/testing/index.js';

const SERVICE = '0000181a-0000-1000-8000-00805f9b34fb';
const CHAR = '00002a6e-0000-1000-8000-00805f9b34fb';
const mac = (i: number): string => `C0:FF:EE:00:01:${i.toString(16).toUpperCase().padStart(2, '0')}`;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function world(
  n: number,
): Promise<{ client: BluezClient; env: Awaited<ReturnType<typeof startSimulatedBluez>> }> {
  const devices: DeviceSpec[] = Array.from({ length: n }, (_, i) => ({
    address: mac(i),
    knownOn: ['hci0', 'hci1'],
    rssi: -40 - i,
    services: [{ uuid: SERVICE, characteristics: [{ uuid: CHAR, flags: ['read', 'notify'], value: [1] }] }],
  }));
  const env = await startSimulatedBluez({
    scenario: { adapters: [{ name: 'hci0' }, { name: 'hci1' }], devices },
    latencyScale: 0.01,
  });
  cleanups.push(() => env.stop());
  const client = await openBluez({ busAddress: env.address });
  cleanups.push(() => client.close());
  return { client, env };
}

describe('mirror: per-object dispatch', () => {
  it('a wait on one device (paths) is not evaluated while 5 other devices connect; a wait without paths is, on every change', async () => {
    const { client } = await world(30);
    const target = mac(0);
    let scoped = 0;
    let global = 0;
    const scopedWait = client.mirror.waitFor(
      (m) => (scoped++, m.device('hci0', target)?.connected === true),
      { paths: [devicePath('hci0', target)], timeoutMs: 30_000 },
    );
    const globalWait = client.mirror.waitFor(
      (m) => (global++, m.device('hci0', target)?.connected === true),
      {
        timeoutMs: 30_000,
      },
    );
    expect([scoped, global]).toEqual([1, 1]);

    for (let i = 1; i <= 5; i++)
      await client.connect('hci0', mac(i), { timeoutMs: 5000, waitServicesResolved: true });
    await new Promise((r) => setTimeout(r, 50));
    // Only the first evaluation: nothing of the target changed.
    expect(scoped).toBe(1);
    // Every Connected/ServicesResolved/GATT object of the five reached the global wait.
    expect(global).toBeGreaterThan(10);

    await client.connect('hci0', target, { timeoutMs: 5000, waitServicesResolved: true });
    await expect(scopedWait).resolves.toBe(true);
    await expect(globalWait).resolves.toBe(true);
    expect(client.mirror.pendingWaits).toBe(0);
    expect(client.mirror.pathListenerCount).toBe(0);
  });

  it('a notification subscription hears its characteristic only; stop() and an aborted wait leave no path listener', async () => {
    const { client, env } = await world(4);
    for (const i of [0, 1])
      await client.connect('hci0', mac(i), { timeoutMs: 5000, waitServicesResolved: true });
    const charOf = (i: number): string => {
      const c = client.gattServices('hci0', mac(i)).flatMap((s) => s.characteristics)[0];
      if (c === undefined) throw new Error('no characteristic');
      return c.path;
    };
    const heard: number[][] = [];
    const sub = await client.startNotify(charOf(0), (v) => heard.push([...v]), { timeoutMs: 5000 });
    const other = await client.startNotify(charOf(1), () => undefined, { timeoutMs: 5000 });
    env.sim.notify(mac(1), CHAR, [9]);
    env.sim.notify(mac(0), CHAR, [7]);
    await client.mirror.waitFor((m) => m.characteristic(charOf(0))?.value?.[0] === 7, { timeoutMs: 5000 });
    expect(heard).toEqual([[7]]);
    expect(client.mirror.pathListenerCount).toBe(2);
    await sub.stop({ timeoutMs: 5000 });
    await other.stop({ timeoutMs: 5000 });
    const ctrl = new AbortController();
    const aborted = client.mirror.waitFor(() => false, {
      paths: [devicePath('hci0', mac(2))],
      signal: ctrl.signal,
    });
    expect(client.mirror.pathListenerCount).toBe(1);
    ctrl.abort(new Error('no longer needed'));
    await expect(aborted).rejects.toThrow('no longer needed');
    expect(client.mirror.pathListenerCount).toBe(0);
  });

  it('the indexed queries agree with the tree: devices per adapter, connected per adapter, where an address is heard', async () => {
    const { client, env } = await world(12);
    await client.connect('hci1', mac(3), { timeoutMs: 5000, waitServicesResolved: true });
    expect(client.mirror.devices('hci0')).toHaveLength(12);
    expect(client.mirror.connectedAddresses('hci1')).toEqual([mac(3)]);
    expect(client.mirror.connectedAddresses('hci0')).toEqual([]);
    expect(client.mirror.connectedCount('hci1')).toBe(1);
    expect(client.mirror.adaptersSeeing(mac(3)).map((d) => d.adapter)).toEqual(['hci0', 'hci1']);
    expect(client.mirror.rssiByAdapter(mac(3)).map(([a]) => a)).toEqual(['hci0', 'hci1']);
    expect(client.mirror.services(devicePath('hci1', mac(3)))).toHaveLength(1);
    env.sim.removeAdapter('hci1');
    await client.mirror.waitFor((m) => m.adapter('hci1') === undefined, { timeoutMs: 5000 });
    expect(client.mirror.adaptersSeeing(mac(3)).map((d) => d.adapter)).toEqual(['hci0']);
    expect(client.mirror.connectedCount('hci1')).toBe(0);
    expect(client.mirror.devices('hci1')).toEqual([]);
  });
});
