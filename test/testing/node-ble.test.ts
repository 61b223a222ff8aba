import { createBluetooth } from 'node-ble';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulatedBluez } from '../../src/testing/index.js';
import type { SimulatedBluez } from '../../src/testing/index.js';
import {
  BATTERY_LEVEL,
  BATTERY_SERVICE,
  NUS_RX,
  NUS_SERVICE,
  NUS_TX,
  bms,
  eventually,
  twoAdapters,
} from './fixtures.js';

// node-ble 1.13, unmodified: it reads DBUS_SYSTEM_BUS_ADDRESS when createBluetooth() is called.
describe('node-ble against the simulator', () => {
  let env: SimulatedBluez;
  let nb: ReturnType<typeof createBluetooth>;

  beforeAll(async () => {
    env = await startSimulatedBluez({ scenario: twoAdapters([bms()]), latencyScale: 0.01 });
    process.env.DBUS_SYSTEM_BUS_ADDRESS = env.address;
    nb = createBluetooth();
  });
  afterAll(async () => {
    nb?.destroy();
    await env?.stop();
  });

  it('lists both adapters, powered', async () => {
    expect((await nb.bluetooth.adapters()).sort()).toEqual(['hci0', 'hci1']);
    const hci1 = await nb.bluetooth.getAdapter('hci1');
    expect(await hci1.isPowered()).toBe(true);
    expect(await hci1.getAddress()).toMatch(/^([0-9A-F]{2}:){5}[0-9A-F]{2}$/);
  });

  it('finds the device by discovery, connects, reads, writes and receives notifications, then sees the remote drop', async () => {
    const adapter = await nb.bluetooth.getAdapter('hci0');
    expect(await adapter.devices()).toEqual([]); // not cached before discovery
    await adapter.startDiscovery();
    expect(await adapter.isDiscovering()).toBe(true);
    const device = await adapter.waitDevice('AA:BB:CC:DD:EE:01', 5000, 10);
    expect(await device.getName()).toBe('bms');
    expect(await device.getRSSI()).toBe(-58);
    const mfr = (await device.getManufacturerData()) as Record<string, unknown>;
    expect(Object.keys(mfr)).toEqual(['741']); // a{qv}: company id 0x02e5
    expect([...(mfr['741'] as Buffer)]).toEqual([1, 2, 3]);
    await adapter.stopDiscovery();

    const events: string[] = [];
    device.on('connect', () => events.push('connect'));
    device.on('disconnect', () => events.push('disconnect'));
    await device.connect();
    await eventually('connect event', () => events.includes('connect'));
    expect(await device.isConnected()).toBe(true);

    const gatt = await device.gatt();
    expect((await gatt.services()).sort()).toEqual([BATTERY_SERVICE, NUS_SERVICE].sort());
    const battery = await (await gatt.getPrimaryService(BATTERY_SERVICE)).getCharacteristic(BATTERY_LEVEL);
    expect([...(await battery.readValue())]).toEqual([87]);

    const uart = await gatt.getPrimaryService(NUS_SERVICE);
    const rx = await uart.getCharacteristic(NUS_RX);
    await rx.writeValue(Buffer.from([0xdd, 0xa5, 0x03]), { type: 'request' });
    await rx.writeValueWithoutResponse(Buffer.from([0x77]));
    expect(env.sim.gattWrites.map((w) => [w.uuid, w.value, w.type])).toEqual([
      [NUS_RX, [0xdd, 0xa5, 0x03], 'request'],
      [NUS_RX, [0x77], 'command'],
    ]);

    const tx = await uart.getCharacteristic(NUS_TX);
    const received: number[][] = [];
    tx.on('valuechanged', (buf: Buffer) => received.push([...buf]));
    await tx.startNotifications();
    expect(env.sim.notify('AA:BB:CC:DD:EE:01', NUS_TX, [1, 2, 3])).toBe(1);
    expect(env.sim.notify('AA:BB:CC:DD:EE:01', NUS_TX, [4])).toBe(1);
    await eventually('two notifications', () => received.length === 2);
    expect(received).toEqual([[1, 2, 3], [4]]);

    env.sim.dropLink('AA:BB:CC:DD:EE:01');
    await eventually('disconnect event', () => events.includes('disconnect'));
    expect(events).toEqual(['connect', 'disconnect']);
    expect(await device.isConnected()).toBe(false);
    const state = env.sim.state().adapters.find((a) => a.name === 'hci0');
    expect(state?.devices[0]).toMatchObject({ connected: false, servicesResolved: false });
    // Cache=always (bluetoothd's default and the simulator's): the tree stays while disconnected.
    expect(state?.devices[0]?.gattServices).toHaveLength(2);
  });
});
