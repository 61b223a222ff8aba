/**
 * node-ble on our shared bus. node-ble's own `createBluetooth()` opens a second, private
 * system-bus connection with no `error` handler (a bus error kills the process) and no way to
 * pass an address; its `Bluetooth` class, however, takes any dbus-next MessageBus. We build it
 * on ours, so there is one connection, one error handler and one address.
 *
 * node-ble is CommonJS and its shipped typings are wrong in places (isConnected/isPaired typed
 * as Promise<string>, getRSSI as Promise<string>; getTXPower, activeAdapters missing), so the
 * interfaces below describe what the code really returns.
 */
import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';
import type { MessageBus } from 'dbus-next';

/** node-ble's GattCharacteristic (typed from its source, not its .d.ts). */
export interface NodeBleGattCharacteristic extends EventEmitter {
  getUUID(): Promise<string>;
  getFlags(): Promise<string[]>;
  isNotifying(): Promise<boolean>;
  readValue(offset?: number): Promise<Buffer>;
  writeValue(
    buffer: Buffer,
    optionsOrOffset?: number | { offset?: number; type?: 'reliable' | 'request' | 'command' },
  ): Promise<void>;
  writeValueWithoutResponse(buffer: Buffer, offset?: number): Promise<void>;
  writeValueWithResponse(buffer: Buffer, offset?: number): Promise<void>;
  startNotifications(): Promise<void>;
  stopNotifications(): Promise<void>;
}

/** node-ble's GattService. */
export interface NodeBleGattService {
  isPrimary(): Promise<boolean>;
  getUUID(): Promise<string>;
  characteristics(): Promise<string[]>;
  getCharacteristic(uuid: string): Promise<NodeBleGattCharacteristic>;
}

/** node-ble's GattServer. Note: `Device.gatt()` waits for ServicesResolved without a timeout. */
export interface NodeBleGattServer {
  services(): Promise<string[]>;
  getPrimaryService(uuid: string): Promise<NodeBleGattService>;
}

/** node-ble's Device (emits `connect` / `disconnect` with `{ connected }`). */
export interface NodeBleDevice extends EventEmitter {
  getName(): Promise<string>;
  getAddress(): Promise<string>;
  getAddressType(): Promise<string>;
  getAlias(): Promise<string>;
  getRSSI(): Promise<number>;
  getTXPower(): Promise<number>;
  isPaired(): Promise<boolean>;
  isConnected(): Promise<boolean>;
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  gatt(): Promise<NodeBleGattServer>;
}

/** node-ble's Adapter. */
export interface NodeBleAdapter {
  getAddress(): Promise<string>;
  getName(): Promise<string>;
  getAlias(): Promise<string>;
  isPowered(): Promise<boolean>;
  isDiscovering(): Promise<boolean>;
  startDiscovery(): Promise<void>;
  stopDiscovery(): Promise<void>;
  devices(): Promise<string[]>;
  getDevice(address: string): Promise<NodeBleDevice>;
  waitDevice(address: string, timeoutMs?: number, discoveryIntervalMs?: number): Promise<NodeBleDevice>;
}

/** node-ble's Bluetooth (top-level session object). */
export interface NodeBleBluetooth {
  /** The MessageBus it runs on (ours). */
  readonly dbus: MessageBus;
  adapters(): Promise<string[]>;
  defaultAdapter(): Promise<NodeBleAdapter>;
  getAdapter(name: string): Promise<NodeBleAdapter>;
  activeAdapters(): Promise<NodeBleAdapter[]>;
}

type BluetoothConstructor = new (dbus: MessageBus) => NodeBleBluetooth;

let ctor: BluetoothConstructor | undefined;

function loadBluetooth(): BluetoothConstructor {
  if (!ctor) {
    const require = createRequire(import.meta.url);
    const loaded: unknown = require('node-ble/src/Bluetooth.js');
    if (typeof loaded !== 'function')
      throw new TypeError('node-ble/src/Bluetooth.js did not export a constructor');
    ctor = loaded as BluetoothConstructor;
  }
  return ctor;
}

/** Builds node-ble's `Bluetooth` on an existing dbus-next MessageBus. */
export function createNodeBle(bus: MessageBus): NodeBleBluetooth {
  const Bluetooth = loadBluetooth();
  return new Bluetooth(bus);
}
