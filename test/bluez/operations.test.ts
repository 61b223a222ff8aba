import { afterEach, describe, expect, it } from 'vitest';
import { startSimulatedBluez } from '../../src/testing/index.js';
import type { Scenario } from '../../src/testing/index.js';
import { AdapterNotReadyError, openBluez } from '../../src/bluez/index.js';
import type { BluezClient } from '../../src/bluez/index.js';
import { daemonStats } from './helpers.js';

type Env = Awaited<ReturnType<typeof startSimulatedBluez>>;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const BMS = 'AA:BB:CC:00:00:10';
const BATTERY = '0000180f-0000-1000-8000-00805f9b34fb';
const LEVEL = '00002a19-0000-1000-8000-00805f9b34fb';
const CONTROL = '0000ff01-0000-1000-8000-00805f9b34fb';

const scenario: Scenario = {
  adapters: [{ name: 'hci0' }, { name: 'hci1' }],
  devices: [
    {
      address: BMS,
      name: 'bms',
      knownOn: ['hci0', 'hci1'],
      services: [
        {
          uuid: BATTERY,
          characteristics: [
            { uuid: LEVEL, flags: ['read', 'notify'], value: [87], notifyIntervalMs: 50 },
            { uuid: CONTROL, flags: ['read', 'write', 'write-without-response'], value: [0] },
          ],
        },
      ],
    },
  ],
};

async function setup(extra: Partial<Scenario> = {}): Promise<{ env: Env; client: BluezClient }> {
  const env = await startSimulatedBluez({ scenario: { ...scenario, ...extra }, latencyScale: 0.01 });
  cleanups.push(() => env.stop());
  const client = await openBluez({ busAddress: env.address });
  cleanups.push(() => client.close());
  return { env, client };
}

function characteristic(client: BluezClient, adapter: string, uuid: string): string {
  for (const s of client.gattServices(adapter, BMS)) {
    for (const c of s.characteristics) if (c.uuid === uuid) return c.path;
  }
  throw new Error(`characteristic ${uuid} not in the mirror`);
}

describe('operations used by the machines', () => {
  it('connects on hci1, reads, writes and receives notifications, then disconnects verified', async () => {
    const { client } = await setup();
    await client.connect('hci1', BMS, { timeoutMs: 15_000, waitServicesResolved: true });
    expect(client.device('hci1', BMS)).toMatchObject({ connected: true, servicesResolved: true });
    expect(client.device('hci0', BMS)?.connected).toBe(false); // the cleanup targets the adapter used
    expect(client.isPhantom('hci1', BMS)).toBe(false);

    const services = client.gattServices('hci1', BMS);
    expect(services.map((s) => s.uuid)).toEqual([BATTERY]);
    expect(services[0]?.characteristics.map((c) => c.uuid).sort()).toEqual([LEVEL, CONTROL].sort());

    const level = characteristic(client, 'hci1', LEVEL);
    expect([...(await client.readCharacteristic(level, { timeoutMs: 5000 }))]).toEqual([87]);

    const control = characteristic(client, 'hci1', CONTROL);
    await client.writeCharacteristic(control, Buffer.from([1, 2, 3]), { type: 'request', timeoutMs: 5000 });
    expect([...(await client.readCharacteristic(control, { timeoutMs: 5000 }))]).toEqual([1, 2, 3]);

    const values: number[][] = [];
    const sub = await client.startNotify(level, (v) => values.push([...v]), { timeoutMs: 5000 });
    await client.mirror.waitFor(() => values.length >= 3, { timeoutMs: 15_000 });
    expect(client.mirror.characteristic(level)?.notifying).toBe(true);
    await sub.stop({ timeoutMs: 5000 });
    await sub.stop(); // idempotent
    const count = values.length;
    await client.mirror.waitFor((m) => m.characteristic(level)?.notifying === false, { timeoutMs: 5000 });
    expect(values.length).toBeLessThanOrEqual(count + 1);

    await expect(client.verifiedDisconnect('hci1', BMS, { timeoutMs: 5000 })).resolves.toBe('disconnected');
    expect(client.device('hci1', BMS)?.connected).toBe(false);
    // Cache=always (bluetoothd's default and the simulator's) keeps the tree while disconnected.
    expect(client.gattServices('hci1', BMS).map((s) => s.uuid)).toEqual([BATTERY]);
    await expect(client.verifiedDisconnect('hci1', BMS)).resolves.toBe('notConnected');
  });

  it('a phantom on hci1 is detected and cleared: Disconnect hangs, RemoveDevice ends the link', async () => {
    const { env, client } = await setup();
    env.sim.inject({ kind: 'phantom', target: { device: BMS, adapter: 'hci1' } });
    await client.connect('hci1', BMS, { timeoutMs: 15_000 });
    await client.mirror.waitFor((m) => m.device('hci1', BMS)?.connected, { timeoutMs: 5000 });
    expect(client.isPhantom('hci1', BMS)).toBe(true);
    expect(client.isPhantom('hci0', BMS)).toBe(false);

    env.sim.clearCalls();
    await expect(client.verifiedDisconnect('hci1', BMS, { timeoutMs: 500 })).resolves.toBe('removed');
    expect(client.device('hci1', BMS)?.connected ?? false).toBe(false);
    expect(client.isPhantom('hci1', BMS)).toBe(false);
    const members = env.sim.calls
      .filter((c) => c.sender === client.uniqueName)
      .map((c) => `${c.path.replace(/^\/org\/bluez\//, '')} ${c.member}`);
    expect(members).toEqual(['hci1/dev_AA_BB_CC_00_00_10 Disconnect', 'hci1 RemoveDevice']);
  });

  it('power off and on is verified through the mirror; Connect on a powered-off adapter is NotReady', async () => {
    const { client } = await setup();
    await client.setPowered('hci0', false, { timeoutMs: 5000 });
    expect(client.mirror.adapter('hci0')?.powered).toBe(false);
    await expect(client.connect('hci0', BMS, { timeoutMs: 5000 })).rejects.toBeInstanceOf(
      AdapterNotReadyError,
    );
    await client.setPowered('hci0', true, { timeoutMs: 5000 });
    expect(client.mirror.adapter('hci0')?.powered).toBe(true);
  });

  it('discovery of our own session starts and stops; the mirror shows Discovering', async () => {
    const { client } = await setup();
    await client.startDiscovery('hci0', { timeoutMs: 5000 });
    await client.mirror.waitFor((m) => m.adapter('hci0')?.discovering, { timeoutMs: 5000 });
    await client.stopDiscovery('hci0', { timeoutMs: 5000 });
    await client.mirror.waitFor((m) => m.adapter('hci0')?.discovering === false, { timeoutMs: 5000 });
  });

  it('removeDevice removes the object; removing it again is not an error', async () => {
    const { client } = await setup();
    await client.removeDevice('hci0', BMS, { timeoutMs: 5000 });
    await client.mirror.waitFor((m) => m.device('hci0', BMS) === undefined, { timeoutMs: 5000 });
    await client.removeDevice('hci0', BMS, { timeoutMs: 5000 });
    expect(client.device('hci1', BMS)).toBeDefined();
  });

  it('bad input is refused with TypeError/RangeError naming the field before any D-Bus traffic', async () => {
    const { env, client } = await setup();
    env.sim.clearCalls();
    expect(() => client.device('hci0', 'not-a-mac')).toThrow(/address/);
    await expect(client.connect('hci0', 'AA:BB:CC:DD:EE', { timeoutMs: 5000 })).rejects.toThrow(RangeError);
    await expect(client.connect('usb0', BMS)).rejects.toThrow(/adapter/);
    await expect(client.connect('hci0', BMS, { timeoutMs: -1 })).rejects.toThrow(/timeoutMs/);
    await expect(client.disconnect('hci0', BMS, { timeoutMs: Number.NaN })).rejects.toThrow(RangeError);
    await expect(client.setPowered('hci0', 'yes' as unknown as boolean)).rejects.toThrow(TypeError);
    await expect(client.readCharacteristic('/org/bluez/hci0/../../x')).rejects.toThrow(RangeError);
    await expect(
      client.writeCharacteristic(
        `/org/bluez/hci0/dev_${BMS.replace(/:/g, '_')}/service0001/char0002`,
        Buffer.from([1]),
        {
          offset: -1,
        },
      ),
    ).rejects.toThrow(/offset/);
    await expect(openBluez({ busAddress: env.address, dbusCallTimeoutMs: -5 })).rejects.toThrow(
      /dbusCallTimeoutMs/,
    );
    expect(env.sim.calls.filter((c) => c.sender === client.uniqueName)).toEqual([]);
  });

  it("node-ble's Bluetooth runs on the library's connection (one connection, not two)", async () => {
    const { env, client } = await setup();
    const before = await daemonStats(env.address);
    const bluetooth = client.nodeBle();
    expect((await bluetooth.adapters()).sort()).toEqual(['hci0', 'hci1']);
    const adapter = await bluetooth.getAdapter('hci1');
    const device = await adapter.getDevice(BMS);
    expect(await device.isConnected()).toBe(false);
    const after = await daemonStats(env.address);
    expect(after.activeConnections).toBe(before.activeConnections);
    expect(
      env.sim.calls.some((c) => c.sender === client.uniqueName && c.interface.includes('Introspectable')),
    ).toBe(true);
  });
});
