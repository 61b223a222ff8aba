/**
 * Typed, immutable snapshots of BlueZ objects as seen by the ObjectManager mirror.
 * Nothing outside src/bluez ever sees a D-Bus Variant: these plain objects are all there is.
 */

/** An org.bluez.Adapter1 object. */
export interface AdapterSnapshot {
  /** `/org/bluez/hciN` */
  readonly path: string;
  /** `hciN` */
  readonly name: string;
  /** Controller address. */
  readonly address: string;
  readonly alias: string | undefined;
  readonly powered: boolean;
  readonly discovering: boolean;
  readonly discoverable: boolean;
  readonly pairable: boolean;
  readonly uuids: readonly string[];
  readonly roles: readonly string[];
}

/** An org.bluez.Device1 object. */
export interface DeviceSnapshot {
  /** `/org/bluez/hciN/dev_AA_BB_CC_DD_EE_FF` */
  readonly path: string;
  /** Adapter name (`hciN`) that owns this object. */
  readonly adapter: string;
  /** Upper-case MAC. */
  readonly address: string;
  readonly addressType: string | undefined;
  readonly name: string | undefined;
  readonly alias: string | undefined;
  readonly connected: boolean;
  readonly servicesResolved: boolean;
  readonly paired: boolean;
  readonly trusted: boolean;
  readonly blocked: boolean;
  /** Last RSSI seen while discovering; absent when BlueZ has none. */
  readonly rssi: number | undefined;
  readonly txPower: number | undefined;
  readonly uuids: readonly string[];
  /** Company id → data. */
  readonly manufacturerData: ReadonlyMap<number, Buffer>;
  /** Service UUID → data. */
  readonly serviceData: ReadonlyMap<string, Buffer>;
}

/** An org.bluez.GattService1 object. */
export interface GattServiceSnapshot {
  readonly path: string;
  /** Device object path. */
  readonly device: string;
  readonly uuid: string;
  readonly primary: boolean;
}

/** An org.bluez.GattCharacteristic1 object. */
export interface GattCharacteristicSnapshot {
  readonly path: string;
  /** Service object path. */
  readonly service: string;
  readonly uuid: string;
  readonly flags: readonly string[];
  readonly notifying: boolean;
  /** Cached value (last read or notification); absent until BlueZ has one. */
  readonly value: Buffer | undefined;
}

/** An org.bluez.GattDescriptor1 object. */
export interface GattDescriptorSnapshot {
  readonly path: string;
  /** Characteristic object path. */
  readonly characteristic: string;
  readonly uuid: string;
  readonly flags: readonly string[];
  readonly value: Buffer | undefined;
}

/** A GATT service with its characteristics (for `gattServices`). */
export interface GattServiceTree extends GattServiceSnapshot {
  readonly characteristics: readonly GattCharacteristicSnapshot[];
}

/** Per-call options: every call is bounded and cancellable. */
export interface CallOptions {
  /** Deadline for this call in ms; defaults 25 000 for methods, 5 000 for properties (docs/defaults.md). */
  timeoutMs?: number;
  /** Cancels the call: the promise rejects with `signal.reason` at once. */
  signal?: AbortSignal;
}

/** Options of a wait on the mirror. */
export interface WaitOptions {
  /** Reject with a `TimeoutError` DOMException after this many ms (default: no deadline, then `signal` is required in practice). */
  timeoutMs?: number;
  /** Cancels the wait. */
  signal?: AbortSignal;
}
