import type { DeviceSpec, Scenario } from '../../src/testing/index.js';

export const BATTERY_SERVICE = '0000180f-0000-1000-8000-00805f9b34fb';
export const BATTERY_LEVEL = '00002a19-0000-1000-8000-00805f9b34fb';
export const CCCD = '00002902-0000-1000-8000-00805f9b34fb';
export const NUS_SERVICE = '6e400001-b5a3-f393-e0a9-e50e24dcca9e';
export const NUS_RX = '6e400002-b5a3-f393-e0a9-e50e24dcca9e';
export const NUS_TX = '6e400003-b5a3-f393-e0a9-e50e24dcca9e';

/** A BMS-like peripheral: battery level (read/notify) and a UART-style write/notify pair. */
export function bms(address = 'AA:BB:CC:DD:EE:01', extra: Partial<DeviceSpec> = {}): DeviceSpec {
  return {
    address,
    name: 'bms',
    addressType: 'random',
    rssi: -58,
    txPower: 4,
    manufacturerData: { 0x02e5: [1, 2, 3] },
    serviceData: { [BATTERY_SERVICE]: [87] },
    uuids: [BATTERY_SERVICE],
    services: [
      {
        uuid: BATTERY_SERVICE,
        characteristics: [
          {
            uuid: BATTERY_LEVEL,
            flags: ['read', 'notify'],
            value: [87],
            descriptors: [{ uuid: CCCD, value: [0, 0] }],
          },
        ],
      },
      {
        uuid: NUS_SERVICE,
        characteristics: [
          { uuid: NUS_RX, flags: ['write', 'write-without-response'] },
          { uuid: NUS_TX, flags: ['notify'], value: [0] },
        ],
      },
    ],
    ...extra,
  };
}

export function twoAdapters(devices: DeviceSpec[] = [bms()]): Scenario {
  return { adapters: [{ name: 'hci0' }, { name: 'hci1' }], devices };
}

/** Polls `check` until it is true; fails after `ms` (a generous deadline, not a timing assertion). */
export async function eventually(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
