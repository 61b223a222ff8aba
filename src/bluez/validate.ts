/**
 * Input validation before any D-Bus traffic (docs/architecture.md, Rules every layer keeps).
 *
 * Object paths are only ever built from parts that passed these checks, so a malformed MAC
 * can never turn into a call on an unexpected object (or a dbus-next marshalling throw deep
 * inside a pending call).
 */

const MAC_RE = /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$/;
const ADAPTER_RE = /^hci(?:0|[1-9][0-9]{0,3})$/;
const PATH_RE = /^\/(?:[A-Za-z0-9_]+(?:\/[A-Za-z0-9_]+)*)?$/;
const UUID_RE = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;

/** Root of every BlueZ object path. */
export const BLUEZ_ROOT = '/org/bluez';

/**
 * Validates a Bluetooth address and returns it upper-cased (BlueZ's spelling).
 * @param value - the address, e.g. `aa:bb:cc:dd:ee:ff`
 * @param field - the name of the field, used in the error message
 * @throws TypeError when not a string, RangeError when malformed
 */
export function validateMac(value: unknown, field = 'address'): string {
  if (typeof value !== 'string') {
    throw new TypeError(`${field} must be a string like "AA:BB:CC:DD:EE:FF", got ${typeof value}`);
  }
  if (!MAC_RE.test(value)) {
    throw new RangeError(
      `${field} must be a MAC address like "AA:BB:CC:DD:EE:FF", got ${JSON.stringify(value)}`,
    );
  }
  return value.toUpperCase();
}

/**
 * Validates an adapter name (`hci0`, `hci1`, …).
 * @param value - the adapter name
 * @param field - the name of the field, used in the error message
 * @throws TypeError when not a string, RangeError when not of the form hciN
 */
export function validateAdapterName(value: unknown, field = 'adapter'): string {
  if (typeof value !== 'string') {
    throw new TypeError(`${field} must be an adapter name like "hci0", got ${typeof value}`);
  }
  if (!ADAPTER_RE.test(value)) {
    throw new RangeError(`${field} must be an adapter name like "hci0", got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * The longest delay a Node.js timer honours (2^31 − 1 ms, about 24.8 days). Node turns a longer
 * delay into 1 ms with only a warning, so a "never time out" value of 2**31 would fire at once.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * Validates a timeout in milliseconds: a finite number from 0 to {@link MAX_TIMER_MS}.
 * @param value - the timeout
 * @param field - the name of the field, used in the error message
 * @throws TypeError when not a number, RangeError when negative, NaN, infinite or beyond the
 * platform's timer range
 */
export function validateTimeoutMs(value: unknown, field: string): number {
  if (typeof value !== 'number') {
    throw new TypeError(`${field} must be a number of milliseconds, got ${typeof value}`);
  }
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${field} must be a finite number of milliseconds >= 0, got ${value}`);
  }
  if (value > MAX_TIMER_MS) {
    throw new RangeError(
      `${field} must be at most ${MAX_TIMER_MS} ms (the longest delay a Node.js timer takes, about 24.8 days), got ${value}`,
    );
  }
  return value;
}

/**
 * Validates an optional AbortSignal.
 * @throws TypeError when present but not an AbortSignal
 */
export function validateSignal(value: unknown, field = 'signal'): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) throw new TypeError(`${field} must be an AbortSignal`);
  return value;
}

/**
 * Validates a D-Bus object path.
 * @throws TypeError when not a string, RangeError when not a valid object path
 */
export function validateObjectPath(value: unknown, field = 'path'): string {
  if (typeof value !== 'string') throw new TypeError(`${field} must be a D-Bus object path string`);
  if (!PATH_RE.test(value))
    throw new RangeError(`${field} is not a valid D-Bus object path: ${JSON.stringify(value)}`);
  return value;
}

/**
 * Validates a 128-bit UUID string and returns it lower-cased (BlueZ's spelling).
 * @throws TypeError when not a string, RangeError when malformed
 */
export function validateUuid(value: unknown, field = 'uuid'): string {
  if (typeof value !== 'string') throw new TypeError(`${field} must be a UUID string`);
  if (!UUID_RE.test(value)) {
    throw new RangeError(
      `${field} must be a 128-bit UUID like "0000180f-0000-1000-8000-00805f9b34fb", got ${JSON.stringify(value)}`,
    );
  }
  return value.toLowerCase();
}

/** Object path of an adapter: `/org/bluez/hci0`. */
export function adapterPath(adapter: string): string {
  return `${BLUEZ_ROOT}/${validateAdapterName(adapter)}`;
}

/** Object path of a device on an adapter: `/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF`. */
export function devicePath(adapter: string, address: string): string {
  return `${adapterPath(adapter)}/dev_${validateMac(address).replace(/:/g, '_')}`;
}

/** Adapter name of a BlueZ path below `/org/bluez/hciN`, or undefined. */
export function adapterOfPath(path: string): string | undefined {
  const m = /^\/org\/bluez\/(hci[0-9]+)(?:\/|$)/.exec(path);
  return m?.[1];
}

/** Device object path that contains `path` (a device, service or characteristic path), or undefined. */
export function devicePathOf(path: string): string | undefined {
  const m = /^\/org\/bluez\/hci[0-9]+\/dev_(?:[0-9A-F]{2}_){5}[0-9A-F]{2}/.exec(path);
  return m?.[0];
}
