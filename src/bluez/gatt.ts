/**
 * GATT: services and characteristics from the mirror, bounded ReadValue / WriteValue /
 * StartNotify / StopNotify. Notifications arrive through the mirror's own PropertiesChanged match
 * rule (a `value` event), so no proxy listener can leak across reconnects (node-ble #12, #54).
 */
import { bluezCall, resolveCall, type BluezContext } from './context.js';
import { BluezError, isAbortError } from './errors.js';
import type { NotifySubscription, WriteOptions } from './client-types.js';
import type { CallOptions, GattServiceTree } from './types.js';
import {
  adapterOfPath,
  devicePath,
  devicePathOf,
  validateAdapterName,
  validateMac,
  validateObjectPath,
} from './validate.js';
import { IFACE, encodeOptions } from './variant.js';

/** GATT services of a device with their characteristics, from the mirror (no D-Bus traffic). */
export function gattServices(ctx: BluezContext, adapter: string, address: string): GattServiceTree[] {
  const path = devicePath(validateAdapterName(adapter), validateMac(address));
  return ctx.mirror
    .services(path)
    .map((s) => ({ ...s, characteristics: ctx.mirror.characteristics(s.path) }));
}

/** Validates a characteristic path: a valid object path strictly below a device object. */
export function validateCharacteristicPath(value: unknown, field = 'path'): string {
  const path = validateObjectPath(value, field);
  const dev = devicePathOf(path);
  if (dev === undefined || dev === path) {
    throw new RangeError(
      `${field} must be a GATT object path below /org/bluez/hciN/dev_XX_XX_XX_XX_XX_XX, got ${JSON.stringify(path)}`,
    );
  }
  return path;
}

function context(path: string): { adapter?: string; device?: string } {
  const dev = devicePathOf(path);
  return {
    adapter: adapterOfPath(path),
    device: dev?.slice(dev.lastIndexOf('/dev_') + 5).replace(/_/g, ':'),
  };
}

function validateOffset(offset: unknown): number | undefined {
  if (offset === undefined) return undefined;
  if (typeof offset !== 'number') throw new TypeError('offset must be a number');
  if (!Number.isInteger(offset) || offset < 0 || offset > 0xffff) {
    throw new RangeError(`offset must be an integer 0..65535, got ${offset}`);
  }
  return offset;
}

/** GattCharacteristic1.ReadValue with a deadline (default propertyTimeoutMs: a read is a round trip to the peripheral). */
export async function readCharacteristic(
  ctx: BluezContext,
  path: string,
  options?: CallOptions & { offset?: number },
): Promise<Buffer> {
  const p = validateCharacteristicPath(path);
  const offset = validateOffset(options?.offset);
  const call = resolveCall(options, ctx.defaults.callTimeoutMs, context(p));
  const body = await ctx.bus.call(
    bluezCall(p, IFACE.characteristic, 'ReadValue', 'a{sv}', [encodeOptions({ offset })]),
    call,
  );
  const value = body[0];
  return Buffer.isBuffer(value) ? value : Buffer.from(Array.isArray(value) ? (value as number[]) : []);
}

/** GattCharacteristic1.WriteValue with a deadline. */
export async function writeCharacteristic(
  ctx: BluezContext,
  path: string,
  value: Uint8Array,
  options?: WriteOptions,
): Promise<void> {
  const p = validateCharacteristicPath(path);
  if (!(value instanceof Uint8Array)) throw new TypeError('value must be a Buffer or Uint8Array');
  const offset = validateOffset(options?.offset);
  const type = options?.type;
  if (type !== undefined && type !== 'request' && type !== 'command' && type !== 'reliable') {
    throw new RangeError(`type must be "request", "command" or "reliable", got ${JSON.stringify(type)}`);
  }
  const call = resolveCall(options, ctx.defaults.callTimeoutMs, context(p));
  await ctx.bus.call(
    bluezCall(p, IFACE.characteristic, 'WriteValue', 'aya{sv}', [
      Buffer.from(value),
      encodeOptions({ offset, type }),
    ]),
    call,
  );
}

/** GattCharacteristic1.StopNotify with a deadline. */
export async function stopNotify(ctx: BluezContext, path: string, options?: CallOptions): Promise<void> {
  const p = validateCharacteristicPath(path);
  const call = resolveCall(options, ctx.defaults.callTimeoutMs, context(p));
  await ctx.bus.call(bluezCall(p, IFACE.characteristic, 'StopNotify'), call);
}

/**
 * Listens for Value changes of `path` (through the mirror), then StartNotify. If StartNotify fails
 * the listener is removed again before the error is thrown.
 */
export async function startNotify(
  ctx: BluezContext,
  path: string,
  onValue: (value: Buffer) => void,
  options?: CallOptions,
): Promise<NotifySubscription> {
  const p = validateCharacteristicPath(path);
  if (typeof onValue !== 'function') throw new TypeError('onValue must be a function');
  const call = resolveCall(options, ctx.defaults.callTimeoutMs, context(p));
  // Dispatched by path: a subscription costs nothing when other characteristics notify.
  const off = ctx.mirror.onValue(p, (changedPath, value) => {
    if (changedPath === p) onValue(value);
  });
  try {
    await ctx.bus.call(bluezCall(p, IFACE.characteristic, 'StartNotify'), call);
  } catch (err) {
    off();
    throw err;
  }
  let stopped = false;
  return {
    path: p,
    async stop(stopOptions?: CallOptions): Promise<void> {
      if (stopped) return;
      stopped = true;
      off();
      try {
        await stopNotify(ctx, p, stopOptions);
      } catch (err) {
        // A link that is already gone has no notifications to stop; that is the goal reached.
        if (isAbortError(err)) throw err;
        if (err instanceof BluezError && ['notConnected', 'notFound', 'bluezGone'].includes(err.errorClass))
          return;
        throw err;
      }
    },
  };
}
