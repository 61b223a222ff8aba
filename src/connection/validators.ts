/**
 * Post-connect validators (the `validating` state, docs/architecture.md). A BlueZ "connected"
 * device can still be useless: GATT discovery silently found nothing, the chip publishes its vendor
 * services seconds later (Telink, docs/defaults.md `lateGattDelaysMs`), or the link is dead (a
 * phantom, or a zombie whose data stopped) and fails every read. A validator says whether this
 * connection is worth keeping; a `false` or a thrown error is a failed attempt that escalation
 * counts (the Python original ignored it).
 */
import type { BluezClient } from '../bluez/client-types.js';
import type { GattServiceTree } from '../bluez/types.js';
import { validateTimeoutMs, validateUuid } from '../bluez/validate.js';

/** What a validator sees. */
export interface ValidationContext {
  /** The BlueZ client the connection uses (for reads and writes with deadlines). */
  readonly bluez: BluezClient;
  /** Adapter of the connection (hciN). */
  readonly adapter: string;
  /** Device address (upper-case). */
  readonly address: string;
  /** The device's GATT services and characteristics, read from the mirror for this check. */
  readonly services: readonly GattServiceTree[];
  /** Aborted when the attempt ends (deadline, cancellation); pass it to every call. */
  readonly signal: AbortSignal;
}

/**
 * A validator: resolve `true` to keep the connection. `false` or a rejection fails this check; the
 * late-GATT retry checks again after each of `lateGattDelaysMs` before the attempt counts as failed.
 */
export type Validator = (context: ValidationContext) => boolean | Promise<boolean>;

const BLUETOOTH_BASE_SUFFIX = '-0000-1000-8000-00805f9b34fb';

/** Accepts a 128-bit UUID or a 16/32-bit short form ("2a19", "0x2A19") and returns the 128-bit lower-case form. */
export function normalizeUuid(value: unknown, field = 'uuid'): string {
  if (typeof value === 'string') {
    const short = /^(?:0x)?([0-9a-f]{4}|[0-9a-f]{8})$/i.exec(value);
    if (short?.[1]) return `${short[1].padStart(8, '0').toLowerCase()}${BLUETOOTH_BASE_SUFFIX}`;
  }
  return validateUuid(value, field);
}

function findCharacteristic(services: readonly GattServiceTree[], uuid: string) {
  for (const service of services) {
    for (const characteristic of service.characteristics) {
      if (characteristic.uuid.toLowerCase() === uuid) return characteristic;
    }
  }
  return undefined;
}

/** At least one GATT service is exported (catches "ServicesResolved but nothing discovered"). */
export const gattNotEmpty: Validator = ({ services }) => services.length > 0;

/** The characteristic `uuid` is exported (case-insensitive; short forms accepted). */
export function characteristicExists(uuid: string): Validator {
  const wanted = normalizeUuid(uuid, 'characteristicExists(uuid)');
  return ({ services }) => findCharacteristic(services, wanted) !== undefined;
}

/**
 * The characteristic `uuid` exists and a ReadValue returns within `timeoutMs` (default 5 000, the
 * original's). The strongest check: a phantom or zombie link fails the read.
 */
export function readCharacteristic(uuid: string, timeoutMs = 5000): Validator {
  const wanted = normalizeUuid(uuid, 'readCharacteristic(uuid)');
  const deadline = validateTimeoutMs(timeoutMs, 'readCharacteristic(timeoutMs)');
  return async ({ bluez, services, signal }) => {
    const characteristic = findCharacteristic(services, wanted);
    if (characteristic === undefined) return false;
    await bluez.readCharacteristic(characteristic.path, { timeoutMs: deadline, signal });
    return true;
  };
}
