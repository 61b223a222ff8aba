/**
 * The org.bluez D-Bus surface the simulator exports, as BlueZ 5.66 documents it
 * (doc/adapter-api.txt, device-api.txt, gatt-api.txt, agent-api.txt at tag 5.66;
 * renamed to doc/org.bluez.*.rst later). Types are the real D-Bus signatures:
 * a client that decodes RSSI as `n` or ManufacturerData as `a{qv}` must see
 * exactly that here, or a test passes against the simulator and fails on a
 * real gateway.
 *
 * Where the 5.66 docs and bluetoothd 5.66 differ, the simulator follows the
 * daemon (what a client really sees): the GATT client objects have no Handle
 * property (server only until later releases) and descriptors have no Flags
 * (src/gatt-client.c descriptor_properties); Value exists only once a value
 * was read or notified, MTU only while connected.
 *
 * Deliberately absent: Device1.Disconnected signal and Adapter1.Manufacturer /
 * Version (BlueZ 5.83+ only), Adapter1.ConnectDevice (experimental, needs
 * bluetoothd -E), AdvertisementMonitor / LEAdvertisingManager / Media
 * interfaces (not modelled).
 */
import type { InterfaceSpec } from './exported.js';

const r = (name: string, signature: string) => ({ name, signature, access: 'read' as const });
const rw = (name: string, signature: string) => ({ name, signature, access: 'readwrite' as const });

export const OBJECT_MANAGER: InterfaceSpec = {
  name: 'org.freedesktop.DBus.ObjectManager',
  properties: [],
  methods: [{ name: 'GetManagedObjects', in: '', out: 'a{oa{sa{sv}}}' }],
  signals: [
    { name: 'InterfacesAdded', signature: 'oa{sa{sv}}' },
    { name: 'InterfacesRemoved', signature: 'oas' },
  ],
};

export const AGENT_MANAGER1: InterfaceSpec = {
  name: 'org.bluez.AgentManager1',
  properties: [],
  methods: [
    { name: 'RegisterAgent', in: 'os', out: '' },
    { name: 'UnregisterAgent', in: 'o', out: '' },
    { name: 'RequestDefaultAgent', in: 'o', out: '' },
  ],
  signals: [],
};

export const ADAPTER1: InterfaceSpec = {
  name: 'org.bluez.Adapter1',
  properties: [
    r('Address', 's'),
    r('AddressType', 's'),
    r('Name', 's'),
    rw('Alias', 's'),
    r('Class', 'u'),
    rw('Powered', 'b'),
    r('PowerState', 's'),
    rw('Discoverable', 'b'),
    rw('DiscoverableTimeout', 'u'),
    rw('Pairable', 'b'),
    rw('PairableTimeout', 'u'),
    r('Discovering', 'b'),
    r('UUIDs', 'as'),
    r('Modalias', 's'),
    r('Roles', 'as'),
    r('ExperimentalFeatures', 'as'),
  ],
  methods: [
    { name: 'StartDiscovery', in: '', out: '' },
    { name: 'StopDiscovery', in: '', out: '' },
    { name: 'RemoveDevice', in: 'o', out: '' },
    { name: 'SetDiscoveryFilter', in: 'a{sv}', out: '' },
    { name: 'GetDiscoveryFilters', in: '', out: 'as' },
  ],
  signals: [],
};

export const DEVICE1: InterfaceSpec = {
  name: 'org.bluez.Device1',
  properties: [
    r('Address', 's'),
    r('AddressType', 's'),
    r('Name', 's'),
    rw('Alias', 's'),
    r('Class', 'u'),
    r('Appearance', 'q'),
    r('Icon', 's'),
    r('Paired', 'b'),
    r('Bonded', 'b'),
    rw('Trusted', 'b'),
    rw('Blocked', 'b'),
    rw('WakeAllowed', 'b'),
    r('LegacyPairing', 'b'),
    r('RSSI', 'n'),
    r('Connected', 'b'),
    r('UUIDs', 'as'),
    r('Modalias', 's'),
    r('Adapter', 'o'),
    r('ManufacturerData', 'a{qv}'),
    r('ServiceData', 'a{sv}'),
    r('TxPower', 'n'),
    r('ServicesResolved', 'b'),
    r('AdvertisingFlags', 'ay'),
    r('AdvertisingData', 'a{yv}'),
  ],
  methods: [
    { name: 'Connect', in: '', out: '' },
    { name: 'Disconnect', in: '', out: '' },
    { name: 'ConnectProfile', in: 's', out: '' },
    { name: 'DisconnectProfile', in: 's', out: '' },
    { name: 'Pair', in: '', out: '' },
    { name: 'CancelPairing', in: '', out: '' },
  ],
  signals: [],
};

export const GATT_SERVICE1: InterfaceSpec = {
  name: 'org.bluez.GattService1',
  properties: [r('UUID', 's'), r('Device', 'o'), r('Primary', 'b'), r('Includes', 'ao')],
  methods: [],
  signals: [],
};

export const GATT_CHARACTERISTIC1: InterfaceSpec = {
  name: 'org.bluez.GattCharacteristic1',
  properties: [
    r('UUID', 's'),
    r('Service', 'o'),
    r('Value', 'ay'),
    r('Notifying', 'b'),
    r('Flags', 'as'),
    r('WriteAcquired', 'b'),
    r('NotifyAcquired', 'b'),
    r('MTU', 'q'),
  ],
  methods: [
    { name: 'ReadValue', in: 'a{sv}', out: 'ay' },
    { name: 'WriteValue', in: 'aya{sv}', out: '' },
    { name: 'AcquireWrite', in: 'a{sv}', out: 'hq' },
    { name: 'AcquireNotify', in: 'a{sv}', out: 'hq' },
    { name: 'StartNotify', in: '', out: '' },
    { name: 'StopNotify', in: '', out: '' },
  ],
  signals: [],
};

export const GATT_DESCRIPTOR1: InterfaceSpec = {
  name: 'org.bluez.GattDescriptor1',
  properties: [r('UUID', 's'), r('Characteristic', 'o'), r('Value', 'ay')],
  methods: [
    { name: 'ReadValue', in: 'a{sv}', out: 'ay' },
    { name: 'WriteValue', in: 'aya{sv}', out: '' },
  ],
  signals: [],
};

/** D-Bus error names bluetoothd uses (src/error.c) and the texts it sends with them. */
export const BluezErrors = {
  InProgress: 'org.bluez.Error.InProgress',
  Failed: 'org.bluez.Error.Failed',
  NotReady: 'org.bluez.Error.NotReady',
  DoesNotExist: 'org.bluez.Error.DoesNotExist',
  InvalidArguments: 'org.bluez.Error.InvalidArguments',
  NotConnected: 'org.bluez.Error.NotConnected',
  NotSupported: 'org.bluez.Error.NotSupported',
  NotPermitted: 'org.bluez.Error.NotPermitted',
  AlreadyExists: 'org.bluez.Error.AlreadyExists',
  NotAuthorized: 'org.bluez.Error.NotAuthorized',
  UnknownObject: 'org.freedesktop.DBus.Error.UnknownObject',
  InvalidArgs: 'org.freedesktop.DBus.Error.InvalidArgs',
  PropertyReadOnly: 'org.freedesktop.DBus.Error.PropertyReadOnly',
} as const;

/** Error texts, verbatim from bluetoothd 5.66 (src/error.c, src/error.h). */
export const BluezTexts = {
  busy: 'Operation already in progress', // btd_error_busy
  inProgress: 'In Progress', // btd_error_in_progress
  notReady: 'Resource Not Ready', // btd_error_not_ready
  doesNotExist: 'Does Not Exist',
  notConnected: 'Not Connected',
  notSupported: 'Operation is not supported',
  noDiscovery: 'No discovery started',
  // att_connect_cb folds EVERY LE connect failure (timeout, HCI 0x0d limited
  // resources, RF abort) into ECONNABORTED → ERR_LE_CONN_ABORT_BY_LOCAL.
  leAbortByLocal: 'le-connection-abort-by-local',
  // A pending Connect answered when Disconnect/link removal cancels it (device.c).
  canceled: 'br-connection-canceled',
  // strerror(EIO): dev_connect → device_connect_le when bt_io_connect fails (5.66: powered-off adapter).
  ioError: 'Input/output error',
} as const;
