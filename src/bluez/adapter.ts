/**
 * Adapter1 operations: power with verification, discovery of our own session, RemoveDevice.
 */
import { bluezCall, remaining, resolveCall, setProperty, type BluezContext } from './context.js';
import { AdapterError, BluezError, isAbortError } from './errors.js';
import type { PowerOptions } from './client-types.js';
import type { CallOptions } from './types.js';
import { adapterPath, devicePath, validateAdapterName, validateMac } from './validate.js';
import { IFACE, encodeDiscoveryFilter, type DiscoveryFilter } from './variant.js';

/**
 * Sets Adapter1.Powered and, unless `verify: false`, waits (within the same deadline) until the
 * mirror shows the new value: a Set that "succeeds" while the controller stays down (rfkill,
 * firmware hiccup) is a known real-world failure, so we only trust the signal.
 */
export async function setPowered(
  ctx: BluezContext,
  adapter: string,
  on: boolean,
  options?: PowerOptions,
): Promise<void> {
  const name = validateAdapterName(adapter);
  if (typeof on !== 'boolean') throw new TypeError('on must be a boolean');
  const call = resolveCall(options, ctx.defaults.propertyTimeoutMs, { adapter: name });
  const startedAt = performance.now();
  await setProperty(ctx, adapterPath(name), IFACE.adapter, 'Powered', 'b', on, call);
  if (options?.verify === false) return;
  try {
    await ctx.mirror.waitFor((m) => m.adapter(name)?.powered === on, {
      paths: [adapterPath(name)],
      timeoutMs: remaining(startedAt, call.timeoutMs),
      signal: call.signal,
      description: `${name} Powered=${on}`,
      errorClass: 'notReady',
    });
  } catch (err) {
    if (isAbortError(err) || !(err instanceof BluezError) || err.code !== 'WAIT_TIMEOUT') throw err;
    throw new AdapterError(
      `${name}: Powered=${on} was accepted but not confirmed within ${call.timeoutMs} ms`,
      {
        adapter: name,
        cause: err,
        advice: on
          ? 'The adapter did not come up. Check rfkill (rfkill list), dmesg for firmware errors, or replug the USB adapter.'
          : 'The adapter did not power down; bluetoothd may be stuck.',
      },
      'POWER_NOT_VERIFIED',
      'notReady',
    );
  }
}

/** Adapter1.StartDiscovery (a discovery session owned by our bus connection). */
export async function startDiscovery(
  ctx: BluezContext,
  adapter: string,
  options?: CallOptions,
): Promise<void> {
  const name = validateAdapterName(adapter);
  const call = resolveCall(options, ctx.defaults.callTimeoutMs, { adapter: name });
  await ctx.bus.call(bluezCall(adapterPath(name), IFACE.adapter, 'StartDiscovery'), call);
}

/**
 * Adapter1.SetDiscoveryFilter for our bus connection's sessions (bluetoothd merges the filters of
 * all clients; doc/org.bluez.Adapter.rst). There is no address key: `pattern` matches an address
 * or name prefix.
 */
export async function setDiscoveryFilter(
  ctx: BluezContext,
  adapter: string,
  filter: DiscoveryFilter,
  options?: CallOptions,
): Promise<void> {
  const name = validateAdapterName(adapter);
  const call = resolveCall(options, ctx.defaults.callTimeoutMs, { adapter: name });
  await ctx.bus.call(
    bluezCall(adapterPath(name), IFACE.adapter, 'SetDiscoveryFilter', 'a{sv}', [
      encodeDiscoveryFilter(filter),
    ]),
    call,
  );
}

/** Adapter1.StopDiscovery (ends our session only; other clients' sessions keep running). */
export async function stopDiscovery(
  ctx: BluezContext,
  adapter: string,
  options?: CallOptions,
): Promise<void> {
  const name = validateAdapterName(adapter);
  const call = resolveCall(options, ctx.defaults.callTimeoutMs, { adapter: name });
  await ctx.bus.call(bluezCall(adapterPath(name), IFACE.adapter, 'StopDiscovery'), call);
}

/**
 * Adapter1.RemoveDevice. A device that is already gone counts as removed (the goal is reached),
 * so `DoesNotExist` / `UnknownObject` resolve instead of rejecting. Resolves once the object has
 * also left the mirror: bluetoothd unregisters it when it replies, but the InterfacesRemoved
 * travels behind the reply, and a client can run its continuation in between (seen with
 * bluetoothd 5.66) and would then act on a device that no longer exists.
 */
export async function removeDevice(
  ctx: BluezContext,
  adapter: string,
  address: string,
  options?: CallOptions,
): Promise<void> {
  const name = validateAdapterName(adapter);
  const mac = validateMac(address);
  const call = resolveCall(options, ctx.defaults.disconnectTimeoutMs, { adapter: name, device: mac });
  const startedAt = performance.now();
  try {
    await ctx.bus.call(
      bluezCall(adapterPath(name), IFACE.adapter, 'RemoveDevice', 'o', [devicePath(name, mac)]),
      call,
    );
  } catch (err) {
    if (err instanceof BluezError && err.errorClass === 'notFound') return;
    throw err;
  }
  // The signal is already on its way: a reply that used up the deadline still gets a moment.
  await ctx.mirror.waitFor((m) => m.device(name, mac) === undefined, {
    paths: [devicePath(name, mac)],
    timeoutMs: Math.max(remaining(startedAt, call.timeoutMs), Math.min(1000, call.timeoutMs)),
    signal: call.signal,
    description: `${mac} removed from ${name}`,
    errorClass: 'noReply',
  });
}
