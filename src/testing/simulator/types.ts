/**
 * The BlueZ simulator's control contract (docs/testing.md). Tests, the `bluez-cm sim`
 * command and scenario files all drive the simulator through these shapes, so
 * a fault described in JSON and a fault injected from code are the same thing.
 */

import type { BluezBehaviourOption } from './context.js';

/** Latencies of the simulated bluetoothd, in milliseconds, before `latencyScale`. */
export interface SimTiming {
  /** Device1.Connect: request → Connected=true. Real LE connects take 100 ms–1 s. */
  connectMs: number;
  /** Connected=true → GATT objects exported → ServicesResolved=true. */
  resolveServicesMs: number;
  /** Device1.Disconnect: request → Connected=false (real bluetoothd waits ≈2 s for the link to close). */
  disconnectMs: number;
  /** While discovering, how often an in-range advertising device is "seen" again (RSSI update). */
  advertisingIntervalMs: number;
  /** An unpaired, disconnected device not seen for this long is removed (BlueZ TemporaryTimeout, 30 s). */
  temporaryTimeoutMs: number;
  /** GATT ReadValue / WriteValue / StartNotify round trip. */
  gattMs: number;
  /**
   * Device1.Connect to a device that is not advertising in range: how long the
   * controller keeps trying before the Connect fails (kernel LE create-connection
   * timeout, 20 s). Optional for compatibility; default 20 000.
   */
  connectTimeoutMs?: number;
  /**
   * Service Changed on a resolved link: bluetoothd 5.66 removes the changed range's GATT objects
   * one InterfacesRemoved at a time, spread over about this long (80 ms measured in the real-BlueZ
   * tier). Optional; default 80.
   */
  serviceChangedRemovalMs?: number;
  /**
   * Service Changed: from the last removal to the re-discovered objects' export (121–148 ms
   * measured in the real-BlueZ tier). Optional; default 130.
   */
  serviceChangedExportMs?: number;
}

/** A GATT descriptor of a simulated device. */
export interface DescriptorSpec {
  uuid: string;
  /** Initial value; bytes. */
  value?: number[];
  flags?: string[];
}

/** A GATT characteristic of a simulated device. */
export interface CharacteristicSpec {
  uuid: string;
  /** BlueZ flag strings: read, write, write-without-response, notify, indicate, … */
  flags: string[];
  /** Initial value; bytes. */
  value?: number[];
  descriptors?: DescriptorSpec[];
  /**
   * When set, the peripheral sends a notification this often while notifying
   * (a counter in the first byte), like a BMS or a sensor would.
   */
  notifyIntervalMs?: number;
}

/** A GATT service of a simulated device. */
export interface ServiceSpec {
  uuid: string;
  primary?: boolean;
  characteristics: CharacteristicSpec[];
}

/** An adapter (controller) of the simulated host. */
export interface AdapterSpec {
  /** hciN */
  name: string;
  /** Defaults to a deterministic address derived from N. */
  address?: string;
  alias?: string;
  /** Default true. */
  powered?: boolean;
  /**
   * How many LE links the controller holds before a Connect fails the way a
   * saturated controller does. Default: unlimited.
   */
  slotLimit?: number;
}

/** A peripheral in the simulated air. */
export interface DeviceSpec {
  /** AA:BB:CC:DD:EE:FF */
  address: string;
  name?: string;
  addressType?: 'public' | 'random';
  /** RSSI seen by every adapter unless `rssiByAdapter` says otherwise. Default -60. */
  rssi?: number;
  rssiByAdapter?: Record<string, number>;
  txPower?: number;
  manufacturerData?: Record<number, number[]>;
  serviceData?: Record<string, number[]>;
  /** Advertised service UUIDs. */
  uuids?: string[];
  services?: ServiceSpec[];
  /** Which adapters can hear it: true = all (default), false = none, or a list of adapter names. */
  inRange?: boolean | string[];
  /** Already in bluetoothd's cache (a Device1 object exists) on these adapters at start. */
  knownOn?: string[];
  paired?: boolean;
}

/** Where a fault applies. */
export type FaultTarget = { device: string; adapter?: string } | { adapter: string } | { daemon: true };

/**
 * One injectable fault. The `kind` names are shared by code, scenario files and
 * the CLI. Faults without a duration stay until cleared (or, for counted faults,
 * until used up).
 */
export type FaultSpec =
  | { kind: 'connect-latency'; target: FaultTarget; ms: number }
  | { kind: 'fail-connect'; target: FaultTarget; count: number; errorName: string; message: string }
  | { kind: 'link-drop'; target: FaultTarget; afterMs?: number }
  | { kind: 'disappear'; target: FaultTarget; forMs?: number }
  | { kind: 'hang'; target: FaultTarget; interface: string; member: string; count?: number }
  | { kind: 'phantom'; target: FaultTarget }
  | { kind: 'stale-in-progress'; target: FaultTarget }
  | { kind: 'empty-gatt'; target: FaultTarget; count?: number }
  | { kind: 'late-gatt'; target: FaultTarget; ms: number }
  | { kind: 'rf-abort'; target: FaultTarget; count: number; linkUpMs?: number }
  | { kind: 'zombie'; target: FaultTarget }
  | { kind: 'slot-limit'; target: FaultTarget; slots: number }
  | { kind: 'power-off'; target: FaultTarget }
  | { kind: 'remove-adapter'; target: FaultTarget; forMs?: number }
  | { kind: 'external-scanner'; target: FaultTarget }
  | { kind: 'restart-daemon'; target: FaultTarget; downMs?: number; crash?: boolean }
  | { kind: 'bus-stall'; target: FaultTarget; ms: number }
  /**
   * The peripheral `target.device` grows `service` (Service Changed), now or `afterMs` after
   * injection; see BluezSimulator.addService. One-shot; clearing it before `afterMs` cancels it.
   */
  | { kind: 'service-changed'; target: FaultTarget; service: ServiceSpec; afterMs?: number }
  /**
   * The next `count` links (default: every link until cleared) come up without a
   * Connected=true PropertiesChanged; reading Connected returns true. bluetoothd 5.66 does this
   * when the ATT socket is up before mgmt's Device Connected event (it logs
   * "device_add_connection() … is already connected"; seen in 2 of 12 conformance runs).
   */
  | { kind: 'silent-connected'; target: FaultTarget; count?: number };

/** A fault that was injected; `clear()` removes it (no-op when already used up). */
export interface FaultHandle {
  readonly spec: FaultSpec;
  clear(): void;
}

/** A scenario file (`bluez-cm sim --scenario FILE.json`). */
export interface Scenario {
  /** Multiplies every default latency; 1 = realistic, 0.01 for fast tests. */
  latencyScale?: number;
  timing?: Partial<SimTiming>;
  adapters: AdapterSpec[];
  devices?: DeviceSpec[];
  faults?: FaultSpec[];
  /**
   * BlueZ version / main.conf switches (optional): a preset name (`'bluez-5.66'`), or single
   * answers, optionally over a preset (`{ preset: 'bluez-5.66', gattCache: 'no' }`). See
   * {@link BluezBehaviour} for each switch and the BlueZ source it follows.
   * gattCache: main.conf [GATT] Cache, 'no' (GATT objects go with the link) | 'yes' |
   * 'always' (the default here and bluetoothd's: objects stay while disconnected).
   * legacyPendingConnectError: answer a second Connect on a pending connect the
   * BlueZ 5.66–5.81 way (org.bluez.Error.Failed "Operation already in
   * progress") instead of 5.82+ org.bluez.Error.InProgress.
   * unpoweredConnectError: 'not-ready' (default) | 'io-error' (5.66: Failed "Input/output error").
   * temporaryDevicesOnPowerOff: 'remove' (default) | 'keep-connectable' (5.66).
   */
  behaviour?: BluezBehaviourOption;
}

/** One method call the simulator received (for "idle silence" and ordering checks). */
export interface SimCall {
  /** ms since the simulator started (performance.now based). */
  at: number;
  sender: string;
  path: string;
  interface: string;
  member: string;
  /** D-Bus error name when the call failed. */
  error?: string;
  /** ms since the simulator started when the reply (or error) was sent; absent while pending. */
  repliedAt?: number;
}
