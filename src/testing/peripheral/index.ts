/**
 * A BLE peripheral served from a host process through a real bluetoothd (GATT application +
 * LE advertisement), used by the real-BlueZ test tier.
 * @packageDocumentation
 */
export { HostPeripheral } from './host-peripheral.js';
export type { HostPeripheralOptions } from './host-peripheral.js';
export { callWithDeadline } from './call.js';
export type { MethodCall } from './call.js';
export type { PeripheralCharacteristicSpec, PeripheralEvent, PeripheralServiceSpec } from './types.js';
