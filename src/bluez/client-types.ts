/**
 * The public surface of src/bluez: what the actors (src/actors) call. Names here are stable.
 */
import type { DBusAuthMethod } from './bus.js';
import type { BluezMirror } from './mirror.js';
import type { NodeBleBluetooth } from './node-ble.js';
import type { AdapterSnapshot, CallOptions, DeviceSnapshot, GattServiceTree, WaitOptions } from './types.js';
import type { DiscoveryFilter } from './variant.js';

/** Options of {@link openBluez}. Every number is validated before any I/O. */
export interface OpenBluezOptions {
  /**
   * D-Bus address, e.g. `unix:path=/run/dbus/system_bus_socket` (default: `DBUS_SYSTEM_BUS_ADDRESS`
   * or the system bus socket). Tests pass the private bus of the simulator.
   */
  busAddress?: string;
  /**
   * D-Bus authentication mechanisms to try, in order. Default: `['ANONYMOUS']` for a `tcp:` address
   * (a VM's, container's or remote gateway's bus), EXTERNAL first for `unix:` (see
   * `defaultAuthMethods`).
   */
  authMethods?: readonly DBusAuthMethod[];
  /** Deadline of every method call unless overridden per call. Default 25 000 (docs/defaults.md). */
  dbusCallTimeoutMs?: number;
  /** Deadline of every property read/write unless overridden per call. Default 5 000 (docs/defaults.md). */
  propertyTimeoutMs?: number;
  /** Deadline of each step of a verified disconnect. Default 5 000 (docs/defaults.md). */
  disconnectTimeoutMs?: number;
  /**
   * Cancels opening. `openBluez` resolves once the bus is connected and the first mirror sync is done;
   * when org.bluez is not on the bus the mirror is simply empty and `waitForBluez` can be used.
   */
  signal?: AbortSignal;
  /** Deadline for opening (connect + first sync). Default dbusCallTimeoutMs. */
  openTimeoutMs?: number;
  /**
   * Most method calls awaiting a reply at once on the D-Bus connection, node-ble's calls on it
   * included; further calls wait in a queue served fairly per device (round-robin), each still
   * under its own deadline and AbortSignal (a call whose deadline passes while queued is never
   * sent). dbus-daemon refuses calls beyond `max_replies_per_connection` with LimitsExceeded: 128
   * on a stock system bus (dbus's bus/system.conf.in). An integer from 1 to 100 000; default 64.
   * The connection is shared by every client on the same address: the lowest value asked for wins.
   */
  maxInFlightCalls?: number;
}

/** How a verified disconnect ended. */
export type VerifiedDisconnectOutcome =
  /** Disconnect replied and the mirror saw Connected=false. */
  | 'disconnected'
  /** Disconnect did not bring Connected=false in time; RemoveDevice did. */
  | 'removed'
  /** The device was not connected (or not known) to begin with. */
  | 'notConnected';

/** Options of {@link BluezClient.connect}. */
export interface ConnectOptions extends CallOptions {
  /** Also wait (within the same deadline) until ServicesResolved=true. Default false. */
  waitServicesResolved?: boolean;
}

/** Options of {@link BluezClient.writeCharacteristic}. */
export interface WriteOptions extends CallOptions {
  /** `request` (with response), `command` (without response) or `reliable`. Default: BlueZ chooses. */
  type?: 'request' | 'command' | 'reliable';
  /** Byte offset. Default 0. */
  offset?: number;
}

/** Options of {@link BluezClient.setPowered}. */
export interface PowerOptions extends CallOptions {
  /** Wait until the mirror shows the new Powered value (within `timeoutMs`). Default true. */
  verify?: boolean;
}

/** A notification subscription returned by {@link BluezClient.startNotify}. */
export interface NotifySubscription {
  /** Object path of the characteristic. */
  readonly path: string;
  /** Stops listening and calls StopNotify (bounded). Safe to call twice. */
  stop(options?: CallOptions): Promise<void>;
}

/**
 * One open door to BlueZ: a shared bus connection, the ObjectManager mirror, and bounded operations.
 * Every method validates its input before any D-Bus traffic, has a deadline, and takes an AbortSignal.
 */
export interface BluezClient {
  /** The ObjectManager mirror: typed snapshots, change events, `waitFor`. */
  readonly mirror: BluezMirror;
  /** The bus address this client talks to. */
  readonly busAddress: string;
  /** Our unique name on the bus (e.g. `:1.42`) while connected; changes after a reconnect. */
  readonly uniqueName: string | undefined;

  /** Adapters known to BlueZ right now (from the mirror; no D-Bus traffic). */
  adapters(): AdapterSnapshot[];
  /** The device object for `address` on `adapter`, or undefined (from the mirror; no D-Bus traffic). */
  device(adapter: string, address: string): DeviceSnapshot | undefined;
  /** True when the device is Connected but not ServicesResolved: a dead link occupying a slot. */
  isPhantom(adapter: string, address: string): boolean;

  /** Device1.Connect with a deadline. Rejects with a typed {@link BluezError}, `DBusTimeoutError` or `signal.reason`. */
  connect(adapter: string, address: string, options?: ConnectOptions): Promise<void>;
  /** Device1.Disconnect with a deadline (default disconnectTimeoutMs). */
  disconnect(adapter: string, address: string, options?: CallOptions): Promise<void>;
  /**
   * Bounded Disconnect, then wait for Connected=false in the mirror; if either fails or times out,
   * RemoveDevice (bounded) and wait for the object to disappear. `timeoutMs` bounds each step.
   */
  verifiedDisconnect(
    adapter: string,
    address: string,
    options?: CallOptions,
  ): Promise<VerifiedDisconnectOutcome>;
  /**
   * Adapter1.RemoveDevice with a deadline. Resolves when the object has left the mirror (also
   * when the device was already gone).
   */
  removeDevice(adapter: string, address: string, options?: CallOptions): Promise<void>;

  /** Sets Adapter1.Powered and (by default) waits for the mirror to show it. */
  setPowered(adapter: string, on: boolean, options?: PowerOptions): Promise<void>;
  /** Adapter1.StartDiscovery (our own session) with a deadline. */
  startDiscovery(adapter: string, options?: CallOptions): Promise<void>;
  /** Adapter1.SetDiscoveryFilter for our sessions with a deadline (an empty filter clears it). */
  setDiscoveryFilter(adapter: string, filter: DiscoveryFilter, options?: CallOptions): Promise<void>;
  /** Adapter1.StopDiscovery (our own session) with a deadline. */
  stopDiscovery(adapter: string, options?: CallOptions): Promise<void>;

  /** GATT services with their characteristics of a device (from the mirror; no D-Bus traffic). */
  gattServices(adapter: string, address: string): GattServiceTree[];
  /** GattCharacteristic1.ReadValue on a characteristic path (validated) with a deadline. */
  readCharacteristic(path: string, options?: CallOptions & { offset?: number }): Promise<Buffer>;
  /** GattCharacteristic1.WriteValue with a deadline. */
  writeCharacteristic(path: string, value: Uint8Array, options?: WriteOptions): Promise<void>;
  /**
   * Subscribes to Value changes through the mirror's signal stream, then calls StartNotify.
   * `onValue` receives every notification.
   */
  startNotify(
    path: string,
    onValue: (value: Buffer) => void,
    options?: CallOptions,
  ): Promise<NotifySubscription>;
  /** GattCharacteristic1.StopNotify with a deadline (prefer `subscription.stop()`). */
  stopNotify(path: string, options?: CallOptions): Promise<void>;

  /** Resolves once org.bluez is on the bus and the mirror is synced (no polling: NameOwnerChanged). */
  waitForBluez(options?: WaitOptions): Promise<void>;

  /**
   * node-ble's `Bluetooth` built on this client's current bus connection (one connection shared).
   * After a bus loss the connection is replaced: call `nodeBle()` again for an object on the new one.
   */
  nodeBle(): NodeBleBluetooth;

  /** Removes our match rules, releases the shared bus (closing it when the last user leaves). Idempotent. */
  close(): Promise<void>;
}
