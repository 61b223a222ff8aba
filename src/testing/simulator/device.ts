/**
 * One org.bluez.Device1 object: a peripheral as one adapter's bluetoothd sees
 * it. The connect / disconnect sequences follow BlueZ 5.66 src/device.c:
 *
 * Connect (LE): the Connect reply is sent as soon as the ATT channel is up
 * (att_connect_cb), i.e. after Connected=true and BEFORE service discovery;
 * GATT objects are exported and then ServicesResolved=true follows
 * (gatt_client_ready_cb → device_svc_resolved). Every ATT connect failure is
 * reported as org.bluez.Error.Failed "le-connection-abort-by-local"
 * (att_connect_cb turns any error into ECONNABORTED).
 *
 * Disconnect: ServicesResolved=false at once, the link is torn down after
 * DISCONNECT_TIMER (2 s), then Connected=false and the Disconnect reply. A
 * Disconnect while Connect is pending cancels it: the pending Connect fails
 * with org.bluez.Error.Failed "br-connection-canceled" (sic, also for LE).
 * Disconnect of a device that is not connected succeeds.
 */
import type { DaemonContext } from './context.js';
import { Attempt, DaemonStopped, pendingConnectError } from './context.js';
import { createInterface } from './exported.js';
import type { ExportedInterface } from './exported.js';
import { BluezErrors, BluezTexts, DEVICE1 } from './bluez-interfaces.js';
import { GattTree } from './gatt.js';
import type { GattOwner } from './gatt.js';
import { dbusError } from './sim-bus.js';
import type { Peripheral } from './world.js';
import type { ActiveFault } from './faults.js';
import dbus from 'dbus-next';

/** What a device needs from its adapter. */
export interface DeviceHost {
  readonly name: string;
  readonly path: string;
  readonly powered: boolean;
  /** Live LE links on this adapter (for the slot limit). */
  linkCount(): number;
  slotLimit(): number;
  /** The peripheral can be reached from this adapter right now (range, power, faults). */
  reachable(p: Peripheral): boolean;
  /** The device became temporary / was removed by a timer. */
  expire(device: SimDevice): void;
}

/** A snapshot of one device for assertions. */
export interface DeviceState {
  address: string;
  path: string;
  name?: string;
  connected: boolean;
  servicesResolved: boolean;
  connecting: boolean;
  paired: boolean;
  trusted: boolean;
  temporary: boolean;
  rssi?: number;
  phantom: boolean;
  gattServices: string[];
  notifying: string[];
}

const RSSI_THRESHOLD = 8; // device.c: smaller RSSI changes are not signalled

export class SimDevice implements GattOwner {
  readonly iface: ExportedInterface;
  readonly path: string;
  connected = false;
  servicesResolved = false;
  rssi: number | undefined;
  txPower: number | undefined;
  temporary: boolean;
  trusted = false;
  blocked = false;
  phantom = false;
  alias: string | undefined;
  uuids: string[];
  gatt: GattTree | undefined;
  /** The peripheral's gattVersion the current tree was built from. */
  private gattVersion = 0;
  private connecting: Attempt | undefined;
  private disconnecting: Promise<void> | undefined;
  private linkGeneration = 0;
  private readonly linkDownWaiters = new Set<() => void>();
  private cancelExpiry: (() => void) | undefined;
  private pairing: Attempt | undefined;
  /** Timers that only matter while the current link is up; cleared when it goes down. */
  private readonly linkTimers = new Set<() => void>();

  constructor(
    private readonly ctx: DaemonContext,
    readonly host: DeviceHost,
    readonly peripheral: Peripheral,
    opts: { temporary: boolean },
  ) {
    this.path = `${host.path}/dev_${peripheral.address.replace(/:/g, '_')}`;
    this.temporary = opts.temporary;
    this.uuids = (peripheral.spec.uuids ?? []).map((u) => u.toLowerCase());
    this.iface = createInterface(DEVICE1, {
      get: (name) => this.get(name),
      set: (name, value) => this.set(name, value),
      call: (member) => this.call(member),
    });
  }

  get address(): string {
    return this.peripheral.address;
  }

  get adapterName(): string {
    return this.host.name;
  }

  get isConnecting(): boolean {
    return this.connecting !== undefined;
  }

  linkUp(): boolean {
    return this.connected && !this.phantom;
  }

  zombie(): boolean {
    return this.ctx.faults.forDevice('zombie', this.host.name, this.address) !== undefined;
  }

  private get(name: string): unknown {
    const spec = this.peripheral.spec;
    switch (name) {
      case 'Address':
        return this.address;
      case 'AddressType':
        return spec.addressType ?? 'public';
      case 'Name':
        return spec.name;
      case 'Alias':
        return this.alias ?? spec.name ?? this.address.replace(/:/g, '-');
      case 'Paired':
      case 'Bonded':
        return this.peripheral.paired;
      case 'Trusted':
        return this.trusted;
      case 'Blocked':
        return this.blocked;
      case 'LegacyPairing':
        return false;
      case 'RSSI':
        return this.rssi;
      case 'TxPower':
        return this.rssi === undefined ? undefined : this.txPower;
      case 'Connected':
        return this.connected;
      case 'UUIDs':
        return this.uuids;
      case 'Adapter':
        return this.host.path;
      case 'ManufacturerData':
        return spec.manufacturerData === undefined
          ? undefined
          : Object.fromEntries(
              Object.entries(spec.manufacturerData).map(([k, v]) => [
                k,
                new dbus.Variant('ay', Buffer.from(v)),
              ]),
            );
      case 'ServiceData':
        return spec.serviceData === undefined
          ? undefined
          : Object.fromEntries(
              Object.entries(spec.serviceData).map(([k, v]) => [
                k.toLowerCase(),
                new dbus.Variant('ay', Buffer.from(v)),
              ]),
            );
      case 'ServicesResolved':
        return this.servicesResolved;
      case 'AdvertisingFlags':
        return Buffer.from([0x06]); // LE General Discoverable, BR/EDR not supported
      default:
        return undefined; // Class, Appearance, Icon, Modalias, WakeAllowed, AdvertisingData: not provided
    }
  }

  private set(name: string, value: unknown): void {
    if (name === 'Trusted' && typeof value === 'boolean') {
      this.trusted = value;
      this.ctx.bus.changed(this.iface, ['Trusted']);
    } else if (name === 'Blocked' && typeof value === 'boolean') {
      this.blocked = value;
      this.ctx.bus.changed(this.iface, ['Blocked']);
      if (value) this.linkLost();
    } else if (name === 'Alias' && typeof value === 'string') {
      this.alias = value === '' ? undefined : value;
      this.ctx.bus.changed(this.iface, ['Alias']);
    } else {
      throw dbusError(BluezErrors.InvalidArguments, 'Invalid arguments in method call');
    }
  }

  private call(member: string): Promise<void> | void {
    switch (member) {
      case 'Connect':
        return this.connect();
      case 'Disconnect':
        return this.disconnect();
      case 'Pair':
        return this.pair();
      case 'CancelPairing':
        if (!this.pairing) throw dbusError(BluezErrors.DoesNotExist, BluezTexts.doesNotExist);
        this.pairing.cancel(dbusError('org.bluez.Error.AuthenticationCanceled', 'Authentication Canceled'));
        return;
      default:
        throw dbusError(BluezErrors.NotSupported, BluezTexts.notSupported);
    }
  }

  // ---- discovery ----------------------------------------------------------

  /** An advertisement was received by this adapter. */
  seen(rssi: number, txPower: number | undefined): void {
    const changed: string[] = [];
    if (this.rssi === undefined || Math.abs(this.rssi - rssi) >= RSSI_THRESHOLD) {
      this.rssi = rssi;
      changed.push('RSSI');
    }
    if (txPower !== undefined && this.txPower !== txPower) {
      this.txPower = txPower;
      changed.push('TxPower');
    }
    if (changed.length > 0) this.ctx.bus.changed(this.iface, changed);
    this.restartExpiry();
  }

  /** Discovery ended: bluetoothd invalidates RSSI and TxPower (adapter.c invalidate_rssi_and_tx_power). */
  discoveryEnded(): void {
    if (this.rssi === undefined) return;
    this.rssi = undefined;
    this.ctx.bus.changed(this.iface, ['RSSI', 'TxPower']);
  }

  /** Temporary devices vanish TemporaryTimeout after they were last seen. */
  restartExpiry(): void {
    this.cancelExpiry?.();
    this.cancelExpiry = undefined;
    if (!this.temporary) return;
    this.cancelExpiry = this.ctx.timers.after(this.ctx.timing.temporaryTimeoutMs, () => {
      this.cancelExpiry = undefined;
      if (this.temporary && !this.connected && !this.connecting) this.host.expire(this);
    });
  }

  private setTemporary(value: boolean): void {
    this.temporary = value;
    if (!value) {
      this.cancelExpiry?.();
      this.cancelExpiry = undefined;
      this.peripheral.known.add(this.host.name);
    } else {
      this.restartExpiry();
    }
  }

  // ---- connect ------------------------------------------------------------

  private fault<K extends Parameters<DaemonContext['faults']['forDevice']>[0]>(kind: K) {
    return this.ctx.faults.forDevice(kind, this.host.name, this.address);
  }

  async connect(): Promise<void> {
    const ctx = this.ctx;
    const ioError = ctx.behaviour.unpoweredConnectError === 'io-error';
    if (!this.host.powered && !ioError) throw dbusError(BluezErrors.NotReady, BluezTexts.notReady);
    if (this.fault('stale-in-progress')) throw pendingConnectError(ctx);
    if (this.connected) return; // le_state.connected: success at once (also for a phantom)
    if (this.connecting) throw pendingConnectError(ctx);
    this.setTemporary(false);
    // 5.66 dev_connect: the device stops being temporary, then bt_io_connect fails on the
    // powered-off controller and device_connect_le returns -EIO.
    if (!this.host.powered) throw dbusError(BluezErrors.Failed, BluezTexts.ioError);
    const attempt = new Attempt();
    this.connecting = attempt;
    try {
      const latency = this.fault('connect-latency')?.spec.ms ?? ctx.timing.connectMs;
      await attempt.wait(ctx, latency);
      if (!this.host.reachable(this.peripheral)) {
        // The controller keeps trying until the kernel's LE connect timeout.
        await attempt.wait(ctx, Math.max(0, ctx.timing.connectTimeoutMs - latency));
        if (!this.host.reachable(this.peripheral))
          throw dbusError(BluezErrors.Failed, BluezTexts.leAbortByLocal);
      }
      const fail = this.fault('fail-connect');
      if (fail) {
        ctx.faults.use(fail);
        throw dbusError(fail.spec.errorName, fail.spec.message);
      }
      if (this.host.linkCount() >= this.host.slotLimit()) {
        // A saturated controller rejects the LE connection (HCI 0x0d Limited
        // Resources → ECONNREFUSED), which att_connect_cb reports as abort-by-local.
        throw dbusError(BluezErrors.Failed, BluezTexts.leAbortByLocal);
      }
      const rf = this.fault('rf-abort');
      if (rf) {
        ctx.faults.use(rf);
        if (rf.spec.linkUpMs !== undefined) {
          this.setConnected(true);
          try {
            await attempt.wait(ctx, rf.spec.linkUpMs);
          } finally {
            if (this.connected) this.setConnected(false);
          }
        }
        throw dbusError(BluezErrors.Failed, BluezTexts.leAbortByLocal);
      }
      const phantom = this.fault('phantom');
      this.setConnected(true);
      if (phantom) {
        this.phantom = true;
        return;
      }
      this.resolveServicesLater();
    } catch (e) {
      if (e instanceof DaemonStopped) return;
      throw e;
    } finally {
      if (this.connecting === attempt) this.connecting = undefined;
    }
  }

  private setConnected(value: boolean): void {
    if (this.connected === value) return;
    this.connected = value;
    if (value) {
      this.linkGeneration += 1;
      const silent = this.fault('silent-connected');
      if (silent) {
        // The property is true, but no PropertiesChanged says so (see the silent-connected fault).
        this.ctx.faults.use(silent);
        return;
      }
    }
    this.ctx.bus.changed(this.iface, ['Connected']);
  }

  private setServicesResolved(value: boolean): void {
    if (this.servicesResolved === value) return;
    this.servicesResolved = value;
    this.ctx.bus.changed(this.iface, ['ServicesResolved']);
  }

  private gattTree(): GattTree {
    if (this.gatt && this.gattVersion !== this.peripheral.gattVersion) {
      // A cached tree from before a Service Changed (the database hash differs on reconnect):
      // bluetoothd drops it and exports what it discovers now.
      this.gatt.unexport();
      this.gatt = undefined;
    }
    if (!this.gatt) {
      this.gatt = new GattTree(this.ctx, this, this.peripheral.services);
      this.gattVersion = this.peripheral.gattVersion;
    }
    return this.gatt;
  }

  /**
   * The peripheral's GATT database changed (it sent Service Changed). On a link with resolved
   * services bluetoothd 5.66 removes the GATT objects of the changed range one InterfacesRemoved
   * at a time (each service's descriptors, characteristics, then the service, spread over
   * `serviceChangedRemovalMs`), re-discovers, and exports the range's new objects
   * `serviceChangedExportMs` after the last removal; ServicesResolved stays true and the link stays
   * up (recorded in test/conformance/golden/bluez-5.66.json, "a service added by a connected
   * peripheral reaches the central"). The changed range is the application's part of the
   * database: everything after the stack's own Generic Access / Generic Attribute / Device
   * Information services, which a peripheral stack keeps at the start (BlueZ's gatt-database
   * re-registers an application as a whole). Notify sessions in the range end. Without a resolved
   * link nothing happens now: the next connect finds the cached tree stale and re-discovers.
   */
  serviceChanged(): void {
    if (!this.linkUp() || !this.servicesResolved || !this.gatt?.isExported) return;
    const old = this.gatt;
    const from = changedRangeStart(old.services.map((svc) => svc.spec.uuid));
    const steps = old.removalSteps(from);
    this.gatt = new GattTree(this.ctx, this, this.peripheral.services, old.services.slice(0, from));
    this.gattVersion = this.peripheral.gattVersion;
    const generation = this.linkGeneration;
    const timing = this.ctx.timing;
    const gap = steps.length > 1 ? timing.serviceChangedRemovalMs / (steps.length - 1) : 0;
    let next = 0;
    let timer: (() => void) | undefined;
    // A link that drops mid-way (or a daemon stop) finishes the removal at once: no object of the
    // old range may stay exported without an owner.
    const flush = (): void => {
      timer?.();
      this.linkTimers.delete(flush);
      while (next < steps.length) steps[next++]?.();
    };
    const step = (): void => {
      steps[next++]?.();
      if (next < steps.length) {
        timer = this.ctx.timers.after(gap, step);
        return;
      }
      timer = this.ctx.timers.after(timing.serviceChangedExportMs, () => {
        this.linkTimers.delete(flush);
        if (this.connected && this.linkGeneration === generation) this.exportGatt(from);
      });
    };
    this.linkTimers.add(flush);
    step();
  }

  /** Exports the GATT tree (from service index `from` on; those before are exported already). */
  private exportGatt(from = 0): void {
    this.gattTree().exportFrom(from);
    const all = new Set([...this.uuids, ...this.peripheral.services.map((s) => s.uuid.toLowerCase())]);
    if (all.size !== this.uuids.length) {
      this.uuids = [...all];
      this.ctx.bus.changed(this.iface, ['UUIDs']);
    }
  }

  private resolveServicesLater(): void {
    const ctx = this.ctx;
    const generation = this.linkGeneration;
    const stillUp = () => this.connected && this.linkGeneration === generation;
    ctx.timers.after(ctx.timing.resolveServicesMs, () => {
      if (!stillUp()) return;
      const empty = this.fault('empty-gatt');
      const late = this.fault('late-gatt');
      if (empty) {
        ctx.faults.use(empty);
        // Resolved, but the database is empty (discovery found nothing).
        this.gatt?.unexport();
        this.gatt = new GattTree(ctx, this, []);
      } else if (late) {
        // Reading of "late GATT" (docs/defaults.md `lateGattDelaysMs`, Telink-style peripherals): bluetoothd
        // reports ServicesResolved=true first and the service objects appear
        // `ms` later, so a client that reads the tree right away sees nothing.
        // Bound to the link: a link lost before the services appear leaves no timer behind.
        const cancel = ctx.timers.after(late.spec.ms, () => {
          this.linkTimers.delete(cancel);
          if (stillUp()) this.exportGatt();
        });
        this.linkTimers.add(cancel);
      } else {
        this.exportGatt();
      }
      this.setServicesResolved(true);
      for (const drop of ctx.faults.allForDevice('link-drop', this.host.name, this.address)) {
        this.scheduleLinkDrop(drop.spec.afterMs ?? 0, drop);
      }
    });
  }

  /** Schedules a remote link loss (one-shot link-drop fault). */
  scheduleLinkDrop(afterMs: number, fault?: ActiveFault<'link-drop'>): void {
    const generation = this.linkGeneration;
    if (fault) this.ctx.faults.use(fault);
    this.ctx.timers.after(afterMs, () => {
      if (this.connected && this.linkGeneration === generation) this.linkLost();
    });
  }

  /**
   * The link went down. A link lost without a local Disconnect (remote end, supervision
   * timeout, power-off, bluetoothd exit) signals Connected=false first and ServicesResolved=false
   * after it: bluetoothd 5.66 handles mgmt Device Disconnected (device_remove_connection) before
   * the ATT channel's hang-up. A local Disconnect (`tearDown`) has already sent
   * ServicesResolved=false when the link goes; then the GATT objects (Cache=no) go before
   * Connected=false.
   */
  linkLost(): void {
    this.connecting?.cancel(dbusError(BluezErrors.Failed, BluezTexts.leAbortByLocal));
    this.clearLinkTimers();
    if (!this.connected) return;
    this.phantom = false;
    const keep =
      this.ctx.behaviour.gattCache === 'always' ||
      (this.ctx.behaviour.gattCache === 'yes' && this.peripheral.paired);
    const dropGatt = () => {
      // An empty database (discovery found nothing: the empty-gatt fault) leaves nothing to
      // cache; the next connect discovers again.
      if (keep && (this.gatt?.services.length ?? 0) > 0) return;
      this.gatt?.unexport();
      this.gatt = undefined;
    };
    if (this.servicesResolved) {
      this.setConnected(false);
      this.setServicesResolved(false);
      dropGatt();
    } else {
      dropGatt();
      this.setConnected(false);
    }
    for (const w of [...this.linkDownWaiters]) w();
    this.linkDownWaiters.clear();
    this.restartExpiry();
  }

  private clearLinkTimers(): void {
    for (const cancel of this.linkTimers) cancel();
    this.linkTimers.clear();
  }

  private waitLinkDown(): Promise<void> {
    if (!this.connected) return Promise.resolve();
    return new Promise((resolve) => this.linkDownWaiters.add(resolve));
  }

  async disconnect(): Promise<void> {
    const ctx = this.ctx;
    const stale = this.fault('stale-in-progress');
    if (stale) {
      // The Disconnect cancels the orphaned pending connect.
      ctx.faults.remove(stale);
      return;
    }
    if (this.connecting) {
      this.connecting.cancel(dbusError(BluezErrors.Failed, BluezTexts.canceled));
      return;
    }
    if (!this.connected) return;
    if (this.phantom) {
      // bluetoothd believes in a link the controller no longer has: the
      // teardown never completes, so the call is not answered while it lasts.
      await this.waitLinkDown();
      return;
    }
    await this.tearDown();
  }

  /** Orderly local disconnect: ServicesResolved=false now, link down after disconnectMs. */
  tearDown(): Promise<void> {
    if (this.disconnecting) return this.disconnecting;
    this.setServicesResolved(false);
    const generation = this.linkGeneration;
    this.disconnecting = (async () => {
      try {
        if (!(await this.ctx.timers.sleep(this.ctx.timing.disconnectMs))) return;
        if (this.connected && this.linkGeneration === generation) this.linkLost();
      } finally {
        this.disconnecting = undefined;
      }
    })();
    return this.disconnecting;
  }

  /** Before removal: cancel what is pending, drop the link (RemoveDevice disconnects first). */
  async prepareRemoval(): Promise<void> {
    this.connecting?.cancel(dbusError(BluezErrors.Failed, BluezTexts.canceled));
    if (this.connected) {
      if (this.phantom) {
        if (!(await this.ctx.timers.sleep(this.ctx.timing.disconnectMs))) return;
        this.linkLost();
      } else {
        await this.tearDown();
      }
    }
  }

  /** Removes GATT objects and timers; the caller removes the Device1 object. */
  dispose(): void {
    this.cancelExpiry?.();
    this.cancelExpiry = undefined;
    this.clearLinkTimers();
    this.connecting?.cancel(new DaemonStopped());
    this.gatt?.unexport();
    this.gatt = undefined;
    for (const w of [...this.linkDownWaiters]) w();
    this.linkDownWaiters.clear();
  }

  /** A bus client left: its notify sessions end. */
  clientGone(sender: string): void {
    for (const c of this.gatt?.characteristics() ?? []) c.dropSession(sender);
  }

  /** Puts an existing device into the phantom state (injected fault). */
  becomePhantom(): void {
    this.connecting?.cancel(dbusError(BluezErrors.Failed, BluezTexts.leAbortByLocal));
    this.phantom = true;
    this.setServicesResolved(false);
    this.gatt?.unexport();
    this.gatt = undefined;
    this.setConnected(true);
  }

  // ---- pairing ------------------------------------------------------------

  private async pair(): Promise<void> {
    if (this.peripheral.paired) throw dbusError(BluezErrors.AlreadyExists, 'Already Exists');
    if (this.pairing) throw dbusError(BluezErrors.InProgress, BluezTexts.busy);
    if (!this.host.powered) throw dbusError(BluezErrors.NotReady, BluezTexts.notReady);
    const attempt = new Attempt();
    this.pairing = attempt;
    try {
      if (!this.connected) await this.connect();
      await attempt.wait(this.ctx, this.ctx.timing.connectMs);
      if (!this.connected) throw dbusError('org.bluez.Error.AuthenticationFailed', 'Authentication Failed');
      this.peripheral.paired = true;
      this.setTemporary(false);
      this.ctx.bus.changed(this.iface, ['Paired', 'Bonded']);
    } catch (e) {
      if (e instanceof DaemonStopped) return;
      throw e;
    } finally {
      this.pairing = undefined;
    }
  }

  state(): DeviceState {
    return {
      address: this.address,
      path: this.path,
      ...(this.peripheral.spec.name !== undefined ? { name: this.peripheral.spec.name } : {}),
      connected: this.connected,
      servicesResolved: this.servicesResolved,
      connecting: this.connecting !== undefined,
      paired: this.peripheral.paired,
      trusted: this.trusted,
      temporary: this.temporary,
      ...(this.rssi !== undefined ? { rssi: this.rssi } : {}),
      phantom: this.phantom,
      gattServices: this.gatt?.isExported ? this.gatt.services.map((s) => s.spec.uuid.toLowerCase()) : [],
      notifying: (this.gatt?.characteristics() ?? []).filter((c) => c.notifying).map((c) => c.uuid),
    };
  }
}

/** Whether bluetoothd's storage knows the peripheral on `adapter` (paired without knownOn: every adapter). */
export function rememberedOn(p: Peripheral, adapter: string): boolean {
  return p.known.has(adapter) || (p.paired && p.spec.knownOn === undefined);
}

/** Generic Access, Generic Attribute, Device Information: a peripheral stack's own services. */
const STACK_SERVICES = new Set(['1800', '1801', '180a'].map((u) => `0000${u}-0000-1000-8000-00805f9b34fb`));

/** Index of the first service of a Service Changed range: the first that is not the stack's own. */
function changedRangeStart(uuids: readonly string[]): number {
  const first = uuids.findIndex((u) => !STACK_SERVICES.has(u.toLowerCase()));
  return first < 0 ? uuids.length : first;
}
