/**
 * The only place D-Bus Variants are unpacked. Property dictionaries (`a{sv}`) are turned into
 * plain maps once, when they enter the mirror, and typed snapshots are built from those maps.
 * Unknown or wrongly-typed properties become `undefined` rather than throwing: a newer
 * bluetoothd adding a property must not break the mirror.
 */
import dbus from 'dbus-next';
import { adapterOfPath } from './validate.js';
import type {
  AdapterSnapshot,
  DeviceSnapshot,
  GattCharacteristicSnapshot,
  GattDescriptorSnapshot,
  GattServiceSnapshot,
} from './types.js';

/** Plain property values of one interface, Variants removed. */
export type PropertyMap = ReadonlyMap<string, unknown>;

/** The BlueZ interfaces the mirror types. */
export const IFACE = {
  adapter: 'org.bluez.Adapter1',
  device: 'org.bluez.Device1',
  service: 'org.bluez.GattService1',
  characteristic: 'org.bluez.GattCharacteristic1',
  descriptor: 'org.bluez.GattDescriptor1',
  agentManager: 'org.bluez.AgentManager1',
  properties: 'org.freedesktop.DBus.Properties',
  objectManager: 'org.freedesktop.DBus.ObjectManager',
} as const;

function isVariant(v: unknown): v is { signature: string; value: unknown } {
  return v instanceof dbus.Variant;
}

/** Recursively removes Variant wrappers; Buffers, arrays and dictionaries keep their shape. */
export function unwrap(v: unknown): unknown {
  if (isVariant(v)) return unwrap(v.value);
  if (Buffer.isBuffer(v)) return v;
  if (Array.isArray(v)) return v.map(unwrap);
  if (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) out[k] = unwrap(val);
    return out;
  }
  return v;
}

/** Decodes one `a{sv}` dictionary into a plain map. */
export function decodeProps(raw: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (typeof raw !== 'object' || raw === null) return out;
  for (const [k, v] of Object.entries(raw)) out.set(k, unwrap(v));
  return out;
}

/** Decodes `a{sa{sv}}` (interfaces and their properties). */
export function decodeInterfaces(raw: unknown): Map<string, Map<string, unknown>> {
  const out = new Map<string, Map<string, unknown>>();
  if (typeof raw !== 'object' || raw === null) return out;
  for (const [iface, props] of Object.entries(raw)) out.set(iface, decodeProps(props));
  return out;
}

/** Decodes the reply of GetManagedObjects, `a{oa{sa{sv}}}`. */
export function decodeManagedObjects(raw: unknown): Map<string, Map<string, Map<string, unknown>>> {
  const out = new Map<string, Map<string, Map<string, unknown>>>();
  if (typeof raw !== 'object' || raw === null) return out;
  for (const [path, ifaces] of Object.entries(raw)) out.set(path, decodeInterfaces(ifaces));
  return out;
}

function str(p: PropertyMap, k: string): string | undefined {
  const v = p.get(k);
  return typeof v === 'string' ? v : undefined;
}
function bool(p: PropertyMap, k: string): boolean {
  return p.get(k) === true;
}
function num(p: PropertyMap, k: string): number | undefined {
  const v = p.get(k);
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}
function strings(p: PropertyMap, k: string): readonly string[] {
  const v = p.get(k);
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
function bytes(v: unknown): Buffer | undefined {
  if (Buffer.isBuffer(v)) return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return Buffer.from(v);
  return undefined;
}
function objectPath(p: PropertyMap, k: string, fallback: string): string {
  return str(p, k) ?? fallback;
}
function parentPath(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

/** Builds an adapter snapshot from Adapter1 properties. */
export function toAdapter(path: string, p: PropertyMap): AdapterSnapshot {
  return {
    path,
    name: path.slice(path.lastIndexOf('/') + 1),
    address: str(p, 'Address') ?? '',
    alias: str(p, 'Alias'),
    powered: bool(p, 'Powered'),
    discovering: bool(p, 'Discovering'),
    discoverable: bool(p, 'Discoverable'),
    pairable: bool(p, 'Pairable'),
    uuids: strings(p, 'UUIDs'),
    roles: strings(p, 'Roles'),
  };
}

/** Builds a device snapshot from Device1 properties. */
export function toDevice(path: string, p: PropertyMap): DeviceSnapshot {
  const manufacturerData = new Map<number, Buffer>();
  const md = p.get('ManufacturerData');
  if (typeof md === 'object' && md !== null) {
    for (const [k, v] of Object.entries(md)) {
      const b = bytes(v);
      if (b) manufacturerData.set(Number(k), b);
    }
  }
  const serviceData = new Map<string, Buffer>();
  const sd = p.get('ServiceData');
  if (typeof sd === 'object' && sd !== null) {
    for (const [k, v] of Object.entries(sd)) {
      const b = bytes(v);
      if (b) serviceData.set(k, b);
    }
  }
  const adapterFromProp = str(p, 'Adapter');
  return {
    path,
    adapter: adapterOfPath(adapterFromProp ?? path) ?? '',
    address: (str(p, 'Address') ?? '').toUpperCase(),
    addressType: str(p, 'AddressType'),
    name: str(p, 'Name'),
    alias: str(p, 'Alias'),
    connected: bool(p, 'Connected'),
    servicesResolved: bool(p, 'ServicesResolved'),
    paired: bool(p, 'Paired'),
    trusted: bool(p, 'Trusted'),
    blocked: bool(p, 'Blocked'),
    rssi: num(p, 'RSSI'),
    txPower: num(p, 'TxPower'),
    uuids: strings(p, 'UUIDs'),
    manufacturerData,
    serviceData,
  };
}

/** Builds a GATT service snapshot from GattService1 properties. */
export function toService(path: string, p: PropertyMap): GattServiceSnapshot {
  return {
    path,
    device: objectPath(p, 'Device', parentPath(path)),
    uuid: (str(p, 'UUID') ?? '').toLowerCase(),
    primary: bool(p, 'Primary'),
  };
}

/** Builds a GATT characteristic snapshot from GattCharacteristic1 properties. */
export function toCharacteristic(path: string, p: PropertyMap): GattCharacteristicSnapshot {
  return {
    path,
    service: objectPath(p, 'Service', parentPath(path)),
    uuid: (str(p, 'UUID') ?? '').toLowerCase(),
    flags: strings(p, 'Flags'),
    notifying: bool(p, 'Notifying'),
    value: bytes(p.get('Value')),
  };
}

/** Builds a GATT descriptor snapshot from GattDescriptor1 properties. */
export function toDescriptor(path: string, p: PropertyMap): GattDescriptorSnapshot {
  return {
    path,
    characteristic: objectPath(p, 'Characteristic', parentPath(path)),
    uuid: (str(p, 'UUID') ?? '').toLowerCase(),
    flags: strings(p, 'Flags'),
    value: bytes(p.get('Value')),
  };
}

/** Wraps a value as a Variant for Properties.Set / option dictionaries. */
export function variant(signature: string, value: unknown): unknown {
  return new dbus.Variant(signature, value);
}

/** Encodes a string-keyed option dictionary `a{sv}` where every value is a string (`s`) or uint16 (`q`). */
export function encodeOptions(options: Record<string, string | number | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if (v === undefined) continue;
    out[k] = typeof v === 'string' ? new dbus.Variant('s', v) : new dbus.Variant('q', v);
  }
  return out;
}

/** Adapter1.SetDiscoveryFilter keys this library sets (doc/org.bluez.Adapter.rst). */
export interface DiscoveryFilter {
  /** `auto`, `bredr` or `le`. */
  readonly transport?: 'auto' | 'bredr' | 'le';
  /** Service UUIDs: only devices advertising one of them are reported. */
  readonly uuids?: readonly string[];
  /** Prefix of the address or name of the devices to report. */
  readonly pattern?: string;
  /** Report every advertisement (RSSI updates), not only new data. */
  readonly duplicateData?: boolean;
}

/** The a{sv} of a {@link DiscoveryFilter} (an empty filter clears ours). */
export function encodeDiscoveryFilter(filter: DiscoveryFilter): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (filter.transport !== undefined) out.Transport = new dbus.Variant('s', filter.transport);
  if (filter.uuids !== undefined) out.UUIDs = new dbus.Variant('as', [...filter.uuids]);
  if (filter.pattern !== undefined) out.Pattern = new dbus.Variant('s', filter.pattern);
  if (filter.duplicateData !== undefined) out.DuplicateData = new dbus.Variant('b', filter.duplicateData);
  return out;
}

/** Reads a plain value from a Properties.Get reply body (a single Variant). */
export function unwrapGetReply(body: readonly unknown[]): unknown {
  return unwrap(body[0]);
}
