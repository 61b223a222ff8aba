/**
 * Device1 operations: connect, disconnect, verified disconnect, phantom check.
 */
import { removeDevice } from './adapter.js';
import type { BusCallOptions } from './bus.js';
import { bluezCall, remaining, resolveCall, type BluezContext } from './context.js';
import { AdapterNotReadyError, BluezError, classifyError, isAbortError } from './errors.js';
import type { ConnectOptions, VerifiedDisconnectOutcome } from './client-types.js';
import type { CallOptions } from './types.js';
import { devicePath, validateAdapterName, validateMac } from './validate.js';
import { IFACE, unwrapGetReply } from './variant.js';

/**
 * Device1.Connect with a deadline. BlueZ cannot cancel a pending Connect through the call itself:
 * when the deadline or the signal fires the caller must Disconnect the half-open link (the
 * connection machine's `disconnecting`/`phantom` states do that).
 */
export async function connect(
  ctx: BluezContext,
  adapter: string,
  address: string,
  options?: ConnectOptions,
): Promise<void> {
  const name = validateAdapterName(adapter);
  const mac = validateMac(address);
  const call = resolveCall(options, ctx.defaults.callTimeoutMs, { adapter: name, device: mac });
  const startedAt = performance.now();
  try {
    await ctx.bus.call(bluezCall(devicePath(name, mac), IFACE.device, 'Connect'), call);
  } catch (err) {
    // Record how full the controller was: the only way to tell a saturated adapter from an RF abort.
    if (err instanceof BluezError && err.linksOnAdapter === undefined) {
      err.linksOnAdapter = ctx.mirror.connectedDevices(name).filter((d) => d.address !== mac).length;
    }
    throw asNotReadyWhenUnpowered(ctx, name, mac, err);
  }
  await confirmConnected(ctx, name, mac, call);
  if (!options?.waitServicesResolved) return;
  await ctx.mirror.waitFor((m) => m.device(name, mac)?.servicesResolved === true, {
    paths: [devicePath(name, mac)],
    timeoutMs: remaining(startedAt, call.timeoutMs),
    signal: call.signal,
    description: `ServicesResolved=true for ${mac} on ${name}`,
    errorClass: 'noReply',
  });
}

/**
 * bluetoothd 5.66 answers an LE Connect on a powered-off adapter with org.bluez.Error.Failed
 * "Input/output error" (its LE connect path has no powered check; NotReady comes only on the
 * BR/EDR path and from stand-ins that follow the documentation). Classified by name, then text,
 * then the adapter's power in the mirror: an error with no class of its own on an unpowered
 * adapter becomes {@link AdapterNotReadyError}, so the caller powers the adapter on instead of
 * retrying blindly.
 */
function asNotReadyWhenUnpowered(ctx: BluezContext, adapter: string, mac: string, err: unknown): unknown {
  if (!(err instanceof BluezError) || err.errorClass === 'notReady') return err;
  const adapterPowered = ctx.mirror.adapter(adapter)?.powered;
  if (classifyError(err, { adapterPowered }).class !== 'notReady') return err;
  return new AdapterNotReadyError(`${err.message}; ${adapter} is powered off`, {
    dbusName: err.dbusName,
    adapter,
    device: mac,
    cause: err,
    linksOnAdapter: err.linksOnAdapter,
  });
}

/**
 * After a successful Connect the mirror must say Connected=true before anyone trusts it (the
 * phantom check and the link watch read it). bluetoothd 5.66 sometimes never signals
 * Connected=true on an LE connect ("device_add_connection() … already connected" in its log)
 * while the property reads true, and its signal may also simply not have arrived yet: when the
 * mirror does not show the link, read the property (bounded) and correct the mirror.
 */
async function confirmConnected(
  ctx: BluezContext,
  adapter: string,
  mac: string,
  call: BusCallOptions,
): Promise<void> {
  if (ctx.mirror.device(adapter, mac)?.connected) return;
  const path = devicePath(adapter, mac);
  const { body, seq } = await ctx.bus.callOrdered(
    bluezCall(path, IFACE.properties, 'Get', 'ss', [IFACE.device, 'Connected']),
    { timeoutMs: ctx.defaults.propertyTimeoutMs, signal: call.signal, adapter, device: mac },
  );
  const connected = unwrapGetReply(body);
  if (typeof connected === 'boolean')
    ctx.mirror.applyPropertyRead(path, IFACE.device, 'Connected', connected, seq);
}

/** Device1.Disconnect with a deadline (default disconnectTimeoutMs). */
export async function disconnect(
  ctx: BluezContext,
  adapter: string,
  address: string,
  options?: CallOptions,
): Promise<void> {
  const name = validateAdapterName(adapter);
  const mac = validateMac(address);
  const call = resolveCall(options, ctx.defaults.disconnectTimeoutMs, { adapter: name, device: mac });
  await ctx.bus.call(bluezCall(devicePath(name, mac), IFACE.device, 'Disconnect'), call);
}

/** Connected && !ServicesResolved: a dead link that still occupies a controller slot. */
export function isPhantom(ctx: BluezContext, adapter: string, address: string): boolean {
  const d = ctx.mirror.device(validateAdapterName(adapter), validateMac(address));
  return d !== undefined && d.connected && !d.servicesResolved;
}

/**
 * Bounded Disconnect, then wait for Connected=false in the mirror; if the Disconnect fails or hangs
 * (phantom links do) or Connected stays true, RemoveDevice (bounded), which makes BlueZ drop the
 * link, and wait for the object to go. `timeoutMs` bounds each of the steps.
 * @throws the RemoveDevice / wait error when even the fallback does not end the link
 */
export async function verifiedDisconnect(
  ctx: BluezContext,
  adapter: string,
  address: string,
  options?: CallOptions,
): Promise<VerifiedDisconnectOutcome> {
  const name = validateAdapterName(adapter);
  const mac = validateMac(address);
  const call = resolveCall(options, ctx.defaults.disconnectTimeoutMs, { adapter: name, device: mac });
  const linkDown = (): boolean => {
    const d = ctx.mirror.device(name, mac);
    return d === undefined || !d.connected;
  };
  if (linkDown()) return 'notConnected';

  let startedAt = performance.now();
  try {
    await ctx.bus.call(bluezCall(devicePath(name, mac), IFACE.device, 'Disconnect'), call);
    await ctx.mirror.waitFor(linkDown, {
      paths: [devicePath(name, mac)],
      timeoutMs: remaining(startedAt, call.timeoutMs),
      signal: call.signal,
      description: `Connected=false for ${mac} on ${name}`,
    });
    return 'disconnected';
  } catch (err) {
    if (isAbortError(err) || call.signal?.aborted) throw err;
    if (err instanceof BluezError && err.errorClass === 'bluezGone') throw err;
    // Disconnect failed, hung, or the link stayed up: fall back to RemoveDevice.
  }
  if (linkDown()) return 'disconnected';
  startedAt = performance.now();
  await removeDevice(ctx, name, mac, call);
  await ctx.mirror.waitFor(() => ctx.mirror.device(name, mac) === undefined || linkDown(), {
    paths: [devicePath(name, mac)],
    timeoutMs: remaining(startedAt, call.timeoutMs),
    signal: call.signal,
    description: `${mac} removed from ${name}`,
  });
  return 'removed';
}
