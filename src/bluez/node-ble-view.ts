/**
 * node-ble objects for an established connection, built without a D-Bus round trip.
 *
 * node-ble's own path (`Bluetooth.getAdapter` → `Adapter.getDevice` → `Device.gatt()`) introspects
 * the adapter, the device, every service and every characteristic and reads each UUID: a dozen or
 * more round trips after the link is already usable, which made `establishConnection` 2–3× slower
 * than a bare Device1.Connect on bluetoothd 5.66. Everything those round trips learn is already in
 * the mirror (ObjectManager's tree: object paths, UUIDs, Primary), so this module builds the same
 * objects from it:
 *
 * - the Device is node-ble's own class (its constructor does no I/O; its proxy is made on first
 *   use, as node-ble always does);
 * - the GATT server and services are small views that answer from the mirror at call time (so a
 *   service exported after a Service Changed is there, which node-ble's one-time snapshot misses);
 * - characteristics are node-ble's own class, made on first request and kept per object path, so
 *   `valuechanged` listeners stay on one object.
 */
import { createRequire } from 'node:module';
import type { MessageBus } from 'dbus-next';
import type { BluezMirror } from './mirror.js';
import type {
  NodeBleDevice,
  NodeBleGattCharacteristic,
  NodeBleGattServer,
  NodeBleGattService,
} from './node-ble.js';
import type { GattServiceSnapshot } from './types.js';
import { devicePath, validateAdapterName, validateMac } from './validate.js';

type DeviceConstructor = new (dbus: MessageBus, adapter: string, device: string) => NodeBleDevice;
type CharacteristicConstructor = new (
  dbus: MessageBus,
  adapter: string,
  device: string,
  service: string,
  characteristic: string,
) => NodeBleGattCharacteristic;

let classes: { Device: DeviceConstructor; GattCharacteristic: CharacteristicConstructor } | undefined;

function nodeBleClasses() {
  if (classes === undefined) {
    const require = createRequire(import.meta.url);
    const Device: unknown = require('node-ble/src/Device.js');
    const GattCharacteristic: unknown = require('node-ble/src/GattCharacteristic.js');
    if (typeof Device !== 'function' || typeof GattCharacteristic !== 'function') {
      throw new TypeError('node-ble/src/Device.js or GattCharacteristic.js did not export a constructor');
    }
    classes = {
      Device: Device as DeviceConstructor,
      GattCharacteristic: GattCharacteristic as CharacteristicConstructor,
    };
  }
  return classes;
}

/** The last element of an object path (`service000a` of `/org/bluez/hci0/dev_…/service000a`). */
function leaf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/**
 * node-ble's Device for `address` on `adapter`, on `bus`, with no D-Bus traffic (node-ble makes
 * its proxy on the first call).
 */
export function nodeBleDevice(bus: MessageBus, adapter: string, address: string): NodeBleDevice {
  const path = devicePath(validateAdapterName(adapter), validateMac(address));
  return new (nodeBleClasses().Device)(bus, adapter, leaf(path));
}

/**
 * A node-ble GattServer for the device, answered from the mirror at call time: `services()` lists
 * the UUIDs exported now, `getPrimaryService(uuid)` gives a service view (rejects with node-ble's
 * "Service not available" when the device exports no such service).
 */
export function nodeBleGattServer(
  bus: MessageBus,
  mirror: BluezMirror,
  adapter: string,
  address: string,
): NodeBleGattServer {
  const path = devicePath(validateAdapterName(adapter), validateMac(address));
  const device = leaf(path);
  const characteristics = new Map<string, NodeBleGattCharacteristic>();
  const findService = (uuid: string): GattServiceSnapshot | undefined => {
    const wanted = uuid.toLowerCase();
    return mirror.services(path).find((s) => s.uuid.toLowerCase() === wanted);
  };
  const serviceView = (uuid: string): NodeBleGattService => {
    const current = (): GattServiceSnapshot => {
      const service = findService(uuid);
      if (service === undefined) throw new Error('Service not available');
      return service;
    };
    return {
      isPrimary: async () => current().primary,
      getUUID: async () => current().uuid,
      characteristics: async () => mirror.characteristics(current().path).map((c) => c.uuid),
      getCharacteristic: async (charUuid: string) => {
        const service = current();
        const wanted = charUuid.toLowerCase();
        const found = mirror.characteristics(service.path).find((c) => c.uuid.toLowerCase() === wanted);
        if (found === undefined) throw new Error('Characteristic not available');
        let characteristic = characteristics.get(found.path);
        if (characteristic === undefined) {
          const { GattCharacteristic } = nodeBleClasses();
          characteristic = new GattCharacteristic(bus, adapter, device, leaf(service.path), leaf(found.path));
          characteristics.set(found.path, characteristic);
        }
        return characteristic;
      },
    };
  };
  return {
    services: async () => mirror.services(path).map((s) => s.uuid),
    getPrimaryService: async (uuid: string) => {
      if (findService(uuid) === undefined) throw new Error('Service not available');
      return serviceView(uuid);
    },
  };
}
