import type { PeripheralServiceSpec } from '../../src/testing/peripheral/index.js';

/**
 * The one peripheral every conformance scenario talks to. On real BlueZ it is the host-side
 * HostPeripheral on btvirt's second controller (hci1); on the simulator it is a simulated
 * device with the same address, name and GATT tree.
 */
export const PERIPHERAL_ADDRESS = '00:AA:01:01:00:01';
export const CENTRAL_ADDRESS = '00:AA:01:00:00:00';
export const PERIPHERAL_NAME = 'bzcm-periph';
export const SERVICE_UUID = '6e400001-b5a3-f393-e0a9-e50e24dcca9e';
export const RW_CHAR_UUID = '6e400002-b5a3-f393-e0a9-e50e24dcca9e';
export const NOTIFY_CHAR_UUID = '6e400003-b5a3-f393-e0a9-e50e24dcca9e';
export const LATE_SERVICE_UUID = '6e400010-b5a3-f393-e0a9-e50e24dcca9e';
export const LATE_CHAR_UUID = '6e400011-b5a3-f393-e0a9-e50e24dcca9e';
export const NOTIFY_INTERVAL_MS = 200;
export const INITIAL_RW_VALUE = [0x68, 0x69];

export const PERIPHERAL_SERVICES: PeripheralServiceSpec[] = [
  {
    uuid: SERVICE_UUID,
    characteristics: [
      { uuid: RW_CHAR_UUID, flags: ['read', 'write'], value: INITIAL_RW_VALUE },
      { uuid: NOTIFY_CHAR_UUID, flags: ['read', 'notify'], value: [0], notifyIntervalMs: NOTIFY_INTERVAL_MS },
    ],
  },
];
