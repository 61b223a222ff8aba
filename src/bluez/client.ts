/**
 * `openBluez`: the one door to BlueZ. Wires the shared bus, the mirror and the operations.
 */
import * as adapterOps from './adapter.js';
import { acquireBus, defaultBusAddress, validateAuthMethods, type SharedBus } from './bus.js';
import { validateMaxInFlightCalls } from './call-gate.js';
import { probeBusAddress } from './bus-probe.js';
import type {
  BluezClient,
  ConnectOptions,
  NotifySubscription,
  OpenBluezOptions,
  PowerOptions,
  VerifiedDisconnectOutcome,
  WriteOptions,
} from './client-types.js';
import { DEFAULTS, type BluezContext, type BluezDefaults } from './context.js';
import * as deviceOps from './device.js';
import * as gattOps from './gatt.js';
import { BluezMirror } from './mirror.js';
import { createNodeBle, type NodeBleBluetooth } from './node-ble.js';
import type { AdapterSnapshot, CallOptions, DeviceSnapshot, GattServiceTree, WaitOptions } from './types.js';
import { validateAdapterName, validateMac, validateSignal, validateTimeoutMs } from './validate.js';
import type { DiscoveryFilter } from './variant.js';

/** How long the look at the bus socket may take before the normal connect path takes over. */
const PROBE_TIMEOUT_MS = 2000;

function readDefaults(options: OpenBluezOptions): BluezDefaults {
  const pick = (value: unknown, field: string, fallback: number): number =>
    value === undefined ? fallback : validateTimeoutMs(value, field);
  return {
    callTimeoutMs: pick(options.dbusCallTimeoutMs, 'dbusCallTimeoutMs', DEFAULTS.callTimeoutMs),
    propertyTimeoutMs: pick(options.propertyTimeoutMs, 'propertyTimeoutMs', DEFAULTS.propertyTimeoutMs),
    disconnectTimeoutMs: pick(
      options.disconnectTimeoutMs,
      'disconnectTimeoutMs',
      DEFAULTS.disconnectTimeoutMs,
    ),
  };
}

/**
 * Opens a client on the bus at `busAddress` (default: the system bus). Resolves once the bus is
 * connected and the mirror has made its first sync attempt (org.bluez may be absent: then the
 * mirror is empty and {@link BluezClient.waitForBluez} waits for it).
 * @throws TypeError/RangeError for bad options (before any I/O); BusUnreachableError at once when
 * the socket is missing, refused or not permitted (ENOENT, ECONNREFUSED, EACCES named, with the
 * path); BusLostError when the bus cannot be reached within `openTimeoutMs`; `signal.reason` when
 * aborted
 */
export async function openBluez(options: OpenBluezOptions = {}): Promise<BluezClient> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const defaults = readDefaults(options);
  const signal = validateSignal(options.signal);
  const openTimeoutMs =
    options.openTimeoutMs === undefined
      ? defaults.callTimeoutMs
      : validateTimeoutMs(options.openTimeoutMs, 'openTimeoutMs');
  if (
    options.busAddress !== undefined &&
    (typeof options.busAddress !== 'string' || options.busAddress === '')
  ) {
    throw new TypeError('busAddress must be a non-empty D-Bus address string');
  }
  const authMethods =
    options.authMethods === undefined ? undefined : validateAuthMethods(options.authMethods);
  const maxInFlightCalls =
    options.maxInFlightCalls === undefined ? undefined : validateMaxInFlightCalls(options.maxInFlightCalls);
  signal?.throwIfAborted();
  const address = options.busAddress ?? defaultBusAddress();
  // A missing, refused or forbidden socket is reported now, naming the errno and the path, not
  // retried until openTimeoutMs. acquireBus validates the address format before anything is opened.
  await probeBusAddress(address, { timeoutMs: Math.min(openTimeoutMs, PROBE_TIMEOUT_MS), signal });
  // node-ble's calls on the connection carry no deadline of their own: they get the call default.
  const bus = acquireBus(address, authMethods, {
    maxInFlightCalls,
    foreignCallTimeoutMs: defaults.callTimeoutMs,
  });
  let mirror: BluezMirror | undefined;
  try {
    await bus.ready({ timeoutMs: openTimeoutMs, signal });
    mirror = new BluezMirror(bus, {
      callTimeoutMs: defaults.callTimeoutMs,
      matchTimeoutMs: defaults.propertyTimeoutMs,
    });
    // start() ends after the first sync attempt (each of its calls has a deadline); if the bus
    // dropped in between, wait (bounded) for the sync that follows the reconnect.
    await mirror.whenStarted();
    if (!mirror.synced) await firstSync(mirror, openTimeoutMs, signal);
  } catch (err) {
    await mirror?.close();
    await bus.release();
    throw err;
  }
  return new Client({ bus, mirror, defaults });
}

/** Waits for the first `rebuilt` or `syncFailed` (a hung bluetoothd must not block startup forever). */
function firstSync(mirror: BluezMirror, timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
  if (mirror.synced) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const done = (err?: unknown): void => {
      offRebuilt();
      offFailed();
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onAbort = (): void => done(signal?.reason);
    const offRebuilt = mirror.on('rebuilt', () => done());
    const offFailed = mirror.on('syncFailed', () => done());
    const timer = setTimeout(() => done(), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

class Client implements BluezClient {
  readonly mirror: BluezMirror;
  readonly busAddress: string;
  private readonly ctx: BluezContext;
  private readonly bus: SharedBus;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(ctx: BluezContext) {
    this.ctx = ctx;
    this.bus = ctx.bus;
    this.mirror = ctx.mirror;
    this.busAddress = ctx.bus.address;
  }

  get uniqueName(): string | undefined {
    return this.bus.uniqueName;
  }

  adapters(): AdapterSnapshot[] {
    return this.mirror.adapters();
  }

  device(adapter: string, address: string): DeviceSnapshot | undefined {
    return this.mirror.device(validateAdapterName(adapter), validateMac(address));
  }

  isPhantom(adapter: string, address: string): boolean {
    return deviceOps.isPhantom(this.ctx, adapter, address);
  }

  connect(adapter: string, address: string, options?: ConnectOptions): Promise<void> {
    return deviceOps.connect(this.ctx, adapter, address, options);
  }

  disconnect(adapter: string, address: string, options?: CallOptions): Promise<void> {
    return deviceOps.disconnect(this.ctx, adapter, address, options);
  }

  verifiedDisconnect(
    adapter: string,
    address: string,
    options?: CallOptions,
  ): Promise<VerifiedDisconnectOutcome> {
    return deviceOps.verifiedDisconnect(this.ctx, adapter, address, options);
  }

  removeDevice(adapter: string, address: string, options?: CallOptions): Promise<void> {
    return adapterOps.removeDevice(this.ctx, adapter, address, options);
  }

  setPowered(adapter: string, on: boolean, options?: PowerOptions): Promise<void> {
    return adapterOps.setPowered(this.ctx, adapter, on, options);
  }

  startDiscovery(adapter: string, options?: CallOptions): Promise<void> {
    return adapterOps.startDiscovery(this.ctx, adapter, options);
  }

  setDiscoveryFilter(adapter: string, filter: DiscoveryFilter, options?: CallOptions): Promise<void> {
    return adapterOps.setDiscoveryFilter(this.ctx, adapter, filter, options);
  }

  stopDiscovery(adapter: string, options?: CallOptions): Promise<void> {
    return adapterOps.stopDiscovery(this.ctx, adapter, options);
  }

  gattServices(adapter: string, address: string): GattServiceTree[] {
    return gattOps.gattServices(this.ctx, adapter, address);
  }

  readCharacteristic(path: string, options?: CallOptions & { offset?: number }): Promise<Buffer> {
    return gattOps.readCharacteristic(this.ctx, path, options);
  }

  writeCharacteristic(path: string, value: Uint8Array, options?: WriteOptions): Promise<void> {
    return gattOps.writeCharacteristic(this.ctx, path, value, options);
  }

  startNotify(
    path: string,
    onValue: (value: Buffer) => void,
    options?: CallOptions,
  ): Promise<NotifySubscription> {
    return gattOps.startNotify(this.ctx, path, onValue, options);
  }

  stopNotify(path: string, options?: CallOptions): Promise<void> {
    return gattOps.stopNotify(this.ctx, path, options);
  }

  waitForBluez(options: WaitOptions = {}): Promise<void> {
    return this.mirror
      .waitFor((m) => m.bluezReady, {
        timeoutMs: options.timeoutMs,
        signal: options.signal,
        description: 'org.bluez on the bus and the mirror synced',
        errorClass: 'bluezGone',
      })
      .then(() => undefined);
  }

  nodeBle(): NodeBleBluetooth {
    return createNodeBle(this.bus.messageBus());
  }

  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = (async () => {
        await this.mirror.close();
        await this.bus.release();
      })();
    }
    return this.closing;
  }

  /** True after close() was called. */
  get isClosed(): boolean {
    return this.closed;
  }
}
