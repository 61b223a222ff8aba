/**
 * The simulated hardware and air: which controllers are plugged in, which
 * peripherals exist, which adapter can hear which peripheral. This survives a
 * bluetoothd restart; bluetoothd's own state (objects, links, discovery
 * sessions) does not.
 */
import type { AdapterSpec, DeviceSpec, ServiceSpec } from './types.js';

/** A controller. */
export interface Controller {
  spec: AdapterSpec;
  address: string;
  /** Plugged in (remove-adapter unplugs it). */
  present: boolean;
  /** Hardware power state; bluetoothd powers adapters on at start (AutoEnable). */
  powered: boolean;
  /** bluetoothd powered it off on its way out; the next bluetoothd powers it on again (AutoEnable). */
  poweredOffByExit?: boolean;
}

/** A peripheral in the air. */
export interface Peripheral {
  spec: DeviceSpec;
  address: string;
  inRange: boolean | string[];
  /** Current GATT database (bytes of each characteristic live here: the peripheral's side). */
  services: ServiceSpec[];
  /** Bumped whenever the database changes at run time (Service Changed); a GATT tree built from an older one is stale. */
  gattVersion: number;
  paired: boolean;
  /** Adapters whose bluetoothd storage knows this device (non-temporary): it returns after a restart. */
  known: Set<string>;
}

const MAC = /^[0-9A-F]{2}(:[0-9A-F]{2}){5}$/;

/** Upper-case, validated MAC; throws a TypeError naming `field`. */
export function normalizeMac(value: unknown, field: string): string {
  if (typeof value !== 'string' || !MAC.test(value.toUpperCase())) {
    throw new TypeError(
      `${field} must be a MAC address like AA:BB:CC:DD:EE:FF (got ${JSON.stringify(value)})`,
    );
  }
  return value.toUpperCase();
}

/** Deterministic controller address from hciN. */
export function defaultAdapterAddress(name: string): string {
  const n = Number(name.replace(/^hci/, ''));
  const hex = (Number.isInteger(n) ? n : 0).toString(16).toUpperCase().padStart(2, '0');
  return `00:1A:7D:DA:71:${hex.slice(-2)}`;
}

export class World {
  readonly controllers = new Map<string, Controller>();
  readonly peripherals = new Map<string, Peripheral>();

  addController(spec: AdapterSpec): Controller {
    if (this.controllers.has(spec.name)) throw new RangeError(`adapter ${spec.name} already exists`);
    const c: Controller = {
      spec,
      address: spec.address
        ? normalizeMac(spec.address, 'adapter.address')
        : defaultAdapterAddress(spec.name),
      present: true,
      powered: spec.powered ?? true,
    };
    this.controllers.set(spec.name, c);
    return c;
  }

  addPeripheral(spec: DeviceSpec): Peripheral {
    const address = normalizeMac(spec.address, 'device.address');
    if (this.peripherals.has(address)) throw new RangeError(`device ${address} already exists`);
    spec = structuredClone(spec);
    const p: Peripheral = {
      spec,
      address,
      known: new Set(spec.knownOn ?? []),
      inRange: spec.inRange ?? true,
      services: structuredClone(spec.services ?? []),
      gattVersion: 0,
      paired: spec.paired ?? false,
    };
    this.peripherals.set(address, p);
    return p;
  }

  /** Whether `adapter` can hear `p` at all (range only; faults are checked elsewhere). */
  inRange(p: Peripheral, adapter: string): boolean {
    return p.inRange === true || (Array.isArray(p.inRange) && p.inRange.includes(adapter));
  }

  rssi(p: Peripheral, adapter: string): number {
    return p.spec.rssiByAdapter?.[adapter] ?? p.spec.rssi ?? -60;
  }
}
