import { Message, MessageType } from 'dbus-next';
import type { MessageBus } from 'dbus-next';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPrivateBus } from '../../src/testing/index.js';
import type { PrivateBus } from '../../src/testing/index.js';
import { HostPeripheral } from '../../src/testing/peripheral/index.js';
import { openBus } from './bus.js';
import { PERIPHERAL_SERVICES } from './peripheral-spec.js';

// The host peripheral's own contract, without bluetoothd (the real tier exercises it against
// bluetoothd 5.66): bad options fail before any I/O, and a failed start leaves nothing behind.
describe('HostPeripheral', () => {
  let privateBus: PrivateBus;
  let bus: MessageBus;
  let observer: MessageBus;

  beforeAll(async () => {
    privateBus = await startPrivateBus();
    bus = openBus(privateBus.address);
    observer = openBus(privateBus.address);
  });

  afterAll(async () => {
    bus.disconnect();
    observer.disconnect();
    await privateBus.stop();
  });

  const base = { adapterPath: '/org/bluez/hci1', localName: 'p', services: PERIPHERAL_SERVICES };

  it('rejects an adapter path that is not a BlueZ adapter, naming the field', async () => {
    await expect(HostPeripheral.start({ ...base, bus, adapterPath: 'hci1' })).rejects.toThrow(/adapterPath/);
  });

  it('rejects an upper-case or short UUID, naming the field', async () => {
    const services = [{ uuid: '180A', characteristics: [] }];
    await expect(HostPeripheral.start({ ...base, bus, services })).rejects.toThrow(/services\[0\]\.uuid/);
  });

  it('rejects a notification interval under 10 ms as a RangeError', async () => {
    const services = [
      {
        uuid: PERIPHERAL_SERVICES[0]?.uuid ?? '',
        characteristics: [
          { uuid: PERIPHERAL_SERVICES[0]?.uuid ?? '', flags: ['notify'], notifyIntervalMs: 5 },
        ],
      },
    ];
    await expect(HostPeripheral.start({ ...base, bus, services })).rejects.toBeInstanceOf(RangeError);
  });

  it('without bluetoothd on the bus, start fails with the D-Bus error and unexports everything', async () => {
    await expect(HostPeripheral.start({ ...base, bus, callTimeoutMs: 5_000 })).rejects.toMatchObject({
      type: 'org.freedesktop.DBus.Error.ServiceUnknown',
    });
    const reply = await observer.call(
      new Message({
        type: MessageType.METHOD_CALL,
        destination: (bus as unknown as { name: string }).name,
        path: '/bzcm/peripheral',
        interface: 'org.freedesktop.DBus.Introspectable',
        member: 'Introspect',
      }),
    );
    const xml = String(reply?.body[0]);
    expect(xml).not.toContain('org.freedesktop.DBus.ObjectManager');
    expect(xml).not.toContain('<node name="adv"');
  });
});
