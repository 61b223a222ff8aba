/**
 * NotifyAcquired / WriteAcquired as bluetoothd 5.66 exports them (src/gatt-client.c): NotifyAcquired
 * on a characteristic that can notify (not indicate-only), WriteAcquired on one that can be written
 * without response, both false. AcquireNotify / AcquireWrite need unix fd passing, which the
 * simulator does not model: they answer NotSupported, saying so.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { openBluez } from '../../src/bluez/client.js';
import type { BluezClient } from '../../src/bluez/client-types.js';
import { startSimulatedBluez, type SimulatedBluez } from '../../src/testing/index.js';
import { callOutcome, openBus } from '../conformance/bus.js';

const DEV = 'AA:BB:CC:00:00:31';
const uuid = (n: number): string => `0000ff0${n}-0000-1000-8000-00805f9b34fb`;
let env: SimulatedBluez | undefined;
let bluez: BluezClient | undefined;
afterEach(async () => {
  await bluez?.close();
  await env?.stop();
  bluez = undefined;
  env = undefined;
});

describe('simulated characteristics: NotifyAcquired / WriteAcquired', () => {
  it('exported where 5.66 exports them, false, and AcquireNotify/AcquireWrite answer NotSupported', async () => {
    env = await startSimulatedBluez({
      latencyScale: 0.01,
      scenario: {
        adapters: [{ name: 'hci0' }],
        devices: [
          {
            address: DEV,
            knownOn: ['hci0'],
            services: [
              {
                uuid: '0000ff00-0000-1000-8000-00805f9b34fb',
                characteristics: [
                  { uuid: uuid(1), flags: ['read', 'notify'], value: [1] },
                  { uuid: uuid(2), flags: ['indicate'] },
                  { uuid: uuid(3), flags: ['write-without-response', 'write'] },
                  { uuid: uuid(4), flags: ['read'], value: [4] },
                ],
              },
            ],
          },
        ],
      },
    });
    bluez = await openBluez({ busAddress: env.address });
    await bluez.connect('hci0', DEV, { waitServicesResolved: true, timeoutMs: 5000 });
    const chars = bluez.gattServices('hci0', DEV).flatMap((s) => s.characteristics);
    const path = (n: number): string => {
      const c = chars.find((x) => x.uuid === uuid(n));
      if (!c) throw new Error(`characteristic ${uuid(n)} not exported`);
      return c.path;
    };
    const bus = openBus(env.address);
    try {
      const props = async (n: number) => {
        const r = await callOutcome(bus, path(n), 'org.freedesktop.DBus.Properties', 'GetAll', 's', [
          'org.bluez.GattCharacteristic1',
        ]);
        if (!r.ok) throw new Error(r.error);
        const all = r.body[0] as Record<string, unknown>;
        return { NotifyAcquired: all['NotifyAcquired'], WriteAcquired: all['WriteAcquired'] };
      };
      expect(await props(1)).toEqual({ NotifyAcquired: false, WriteAcquired: undefined });
      expect(await props(2)).toEqual({ NotifyAcquired: undefined, WriteAcquired: undefined });
      expect(await props(3)).toEqual({ NotifyAcquired: undefined, WriteAcquired: false });
      expect(await props(4)).toEqual({ NotifyAcquired: undefined, WriteAcquired: undefined });
      const acquire = await callOutcome(
        bus,
        path(1),
        'org.bluez.GattCharacteristic1',
        'AcquireNotify',
        'a{sv}',
        [{}],
      );
      expect(acquire).toMatchObject({ ok: false, error: 'org.bluez.Error.NotSupported' });
      expect(acquire.ok ? '' : acquire.text).toMatch(/not modelled.*fd passing.*StartNotify/);
      const write = await callOutcome(
        bus,
        path(3),
        'org.bluez.GattCharacteristic1',
        'AcquireWrite',
        'a{sv}',
        [{}],
      );
      expect(write).toMatchObject({ ok: false, error: 'org.bluez.Error.NotSupported' });
    } finally {
      bus.disconnect();
    }
  });
});
