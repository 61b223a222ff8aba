/**
 * One org.bluez.Adapter1 object and the devices under it. Discovery follows
 * BlueZ 5.66 src/adapter.c: sessions are per D-Bus client (a second
 * StartDiscovery from the same client → InProgress "Operation already in
 * progress"; other clients share the running discovery), StopDiscovery from a
 * client without a session → Failed "No discovery started", and a session
 * ends when its client leaves the bus. When the last session ends, RSSI and
 * TxPower of the devices are invalidated.
 */
import type { DaemonContext } from './context.js';
import { DaemonStopped } from './context.js';
import { createInterface } from './exported.js';
import type { ExportedInterface } from './exported.js';
import { ADAPTER1, BluezErrors, BluezTexts } from './bluez-interfaces.js';
import { SimDevice, rememberedOn } from './device.js';
import type { DeviceHost, DeviceState } from './device.js';
import { dbusError } from './sim-bus.js';
import type { Controller, Peripheral } from './world.js';

/** A snapshot of one adapter for assertions. */
export interface AdapterState {
  name: string;
  address: string;
  powered: boolean;
  discovering: boolean;
  /** Bus names holding a discovery session. */
  discoveryClients: string[];
  devices: DeviceState[];
}

/**
 * How long after its RemoveDevice reply the InterfacesRemoved of a device go out. A few
 * milliseconds keep the reply and the signals in separate reads of a client even on a loaded
 * machine, as the client of the real-BlueZ conformance run saw them.
 */
const REMOVAL_SIGNAL_DELAY_MS = 10;

const FILTER_KEYS = ['UUIDs', 'RSSI', 'Pathloss', 'Transport', 'DuplicateData', 'Discoverable', 'Pattern'];

export class SimAdapter implements DeviceHost {
  readonly iface: ExportedInterface;
  readonly path: string;
  readonly devices = new Map<string, SimDevice>();
  private readonly sessions = new Set<string>();
  private readonly presetFilters = new Map<string, Record<string, unknown>>();
  private discovering = false;
  private stopScan: (() => void) | undefined;
  /** Unplugged or gone with its bluetoothd: pending calls must not act on it any more. */
  private destroyed = false;
  private alias: string | undefined;
  private discoverable = false;
  private pairable = true;
  private powerChange: Promise<void> | undefined;

  constructor(
    private readonly ctx: DaemonContext,
    readonly controller: Controller,
  ) {
    this.path = `/org/bluez/${controller.spec.name}`;
    this.alias = controller.spec.alias;
    this.iface = createInterface(ADAPTER1, {
      get: (name) => this.get(name),
      set: (name, value) => this.set(name, value),
      call: (member, args) => this.call(member, args),
    });
  }

  get name(): string {
    return this.controller.spec.name;
  }

  get powered(): boolean {
    return this.controller.powered;
  }

  /** Exports the adapter and the devices bluetoothd's storage knows on it. */
  export(): void {
    this.ctx.bus.add({ path: this.path, interfaces: [this.iface] });
    for (const p of this.ctx.world.peripherals.values()) {
      if (rememberedOn(p, this.name)) this.addDevice(p, false);
    }
  }

  private get(name: string): unknown {
    switch (name) {
      case 'Address':
        return this.controller.address;
      case 'AddressType':
        return 'public';
      case 'Name':
        return `bluez-sim-${this.name}`;
      case 'Alias':
        return this.alias ?? `bluez-sim-${this.name}`;
      case 'Class':
        return 0;
      case 'Powered':
        return this.powered;
      case 'PowerState':
        return this.powered ? 'on' : 'off';
      case 'Discoverable':
        return this.discoverable;
      case 'DiscoverableTimeout':
        return 180;
      case 'Pairable':
        return this.pairable;
      case 'PairableTimeout':
        return 0;
      case 'Discovering':
        return this.discovering;
      case 'UUIDs':
        return ['00001800-0000-1000-8000-00805f9b34fb', '00001801-0000-1000-8000-00805f9b34fb'];
      case 'Modalias':
        return 'usb:v1D6Bp0246d0542';
      case 'Roles':
        return ['central', 'peripheral'];
      default:
        return undefined;
    }
  }

  private async set(name: string, value: unknown): Promise<void> {
    switch (name) {
      case 'Powered':
        if (typeof value !== 'boolean') break;
        return this.setPowered(value, 'dbus');
      case 'Alias':
        if (typeof value !== 'string') break;
        this.alias = value === '' ? undefined : value;
        this.ctx.bus.changed(this.iface, ['Alias']);
        return;
      case 'Discoverable':
      case 'Pairable':
        if (typeof value !== 'boolean') break;
        if (!this.powered) throw dbusError(BluezErrors.NotReady, BluezTexts.notReady);
        if (name === 'Discoverable') this.discoverable = value;
        else this.pairable = value;
        this.ctx.bus.changed(this.iface, [name]);
        return;
      case 'DiscoverableTimeout':
      case 'PairableTimeout':
        return;
      default:
        break;
    }
    throw dbusError(BluezErrors.InvalidArguments, 'Invalid arguments in method call');
  }

  private call(member: string, args: unknown[]): unknown {
    const sender = this.ctx.bus.currentSender;
    switch (member) {
      case 'StartDiscovery':
        return this.startDiscovery(sender);
      case 'StopDiscovery':
        return this.stopDiscovery(sender);
      case 'SetDiscoveryFilter':
        return this.setDiscoveryFilter(sender, args[0]);
      case 'GetDiscoveryFilters':
        return FILTER_KEYS;
      case 'RemoveDevice':
        return this.removeDevicePath(String(args[0]));
      default:
        throw dbusError(BluezErrors.NotSupported, BluezTexts.notSupported);
    }
  }

  // ---- power --------------------------------------------------------------

  /**
   * A power change. `source` says who asked: `'dbus'` is Adapter1.Powered set by a client
   * (bluetoothd removes every temporary device before it sends mgmt Set Powered off),
   * `'mgmt'` is a change underneath bluetoothd (rfkill, another process, the power-off fault).
   */
  async setPowered(on: boolean, source: 'dbus' | 'mgmt'): Promise<void> {
    await this.powerChange;
    if (this.controller.powered === on) return;
    // src/adapter.c property_set_mode: remove_temporary_devices() runs before the mgmt command.
    if (!on && source === 'dbus') this.dropTemporaryDevices();
    this.powerChange = (async () => {
      if (!(await this.ctx.timers.sleep(this.ctx.timing.gattMs))) throw new DaemonStopped();
      if (!on) this.powerDown();
      else {
        this.controller.powered = true;
        this.ctx.bus.changed(this.iface, ['Powered', 'PowerState']);
      }
    })().finally(() => {
      this.powerChange = undefined;
    });
    return this.powerChange;
  }

  /**
   * The controller is off (src/adapter.c adapter_stop): discovery sessions end, every link
   * drops, and one PropertiesChanged carries Powered=false together with Discovering=false
   * (adapter_stop emits Discovering whether or not a discovery ran). Temporary devices go as
   * {@link BluezBehaviour.temporaryDevicesOnPowerOff} says.
   */
  private powerDown(): void {
    this.sessions.clear();
    this.presetFilters.clear();
    this.stopScan?.();
    this.stopScan = undefined;
    const wasDiscovering = this.discovering;
    this.discovering = false;
    if (wasDiscovering) for (const d of this.devices.values()) d.discoveryEnded();
    for (const d of [...this.devices.values()]) d.linkLost();
    this.controller.powered = false;
    this.ctx.bus.changed(this.iface, ['Powered', 'Discovering', 'PowerState']);
    // discovery_cleanup(adapter, 0) removes temporary devices that are not connectable; every
    // simulated peripheral advertises connectable, so in 'keep-connectable' mode none goes.
    if (this.ctx.behaviour.temporaryDevicesOnPowerOff === 'remove') this.dropTemporaryDevices();
  }

  /**
   * bluetoothd exits (src/adapter.c adapter_shutdown): temporary devices go, then the controller
   * is powered off like any power-off (links drop, Powered=false with Discovering=false).
   */
  shutDown(): void {
    if (!this.powered) return;
    this.dropTemporaryDevices();
    this.powerDown();
    this.controller.poweredOffByExit = true;
  }

  /** Every temporary device goes (src/adapter.c remove_temporary_devices). */
  private dropTemporaryDevices(): void {
    for (const d of [...this.devices.values()]) if (d.temporary) this.dropDevice(d);
  }

  // ---- discovery ----------------------------------------------------------

  private async startDiscovery(sender: string): Promise<void> {
    if (!this.powered) throw dbusError(BluezErrors.NotReady, BluezTexts.notReady);
    if (this.ctx.faults.forAdapter('external-scanner', this.name)) {
      // Another process drives the controller's scan: mgmt Start Discovery is busy.
      throw dbusError(BluezErrors.InProgress, BluezTexts.busy);
    }
    if (this.sessions.has(sender)) throw dbusError(BluezErrors.InProgress, BluezTexts.busy);
    this.sessions.add(sender);
    if (this.discovering) return;
    // The reply waits until the controller reports discovery started.
    if (!(await this.ctx.timers.sleep(this.ctx.timing.gattMs))) throw new DaemonStopped();
    // Unplugged meanwhile (a controller plugged back in is a new adapter object): no scan may
    // start on this one, or its ticks would export devices the new adapter already has.
    if (this.destroyed) throw dbusError(BluezErrors.NotReady, BluezTexts.notReady);
    if (!this.sessions.has(sender) || this.discovering || !this.powered) return;
    this.discovering = true;
    this.ctx.bus.changed(this.iface, ['Discovering']);
    // bluetoothd answers StartDiscovery when mgmt Start Discovery completes, before the first
    // advertising report (seen on 5.66: the reply precedes the device's InterfacesAdded). A device
    // advertising every interval is first heard, on average, half an interval after the scan
    // starts; a tick in the same turn as the reply could reach a client in the same socket read.
    const firstMs = Math.max(1, this.ctx.timing.advertisingIntervalMs / 2);
    const cancelFirst = this.ctx.timers.after(firstMs, () => this.scanTick());
    const cancelEvery = this.ctx.timers.every(this.ctx.timing.advertisingIntervalMs, () => this.scanTick());
    this.stopScan = () => {
      cancelFirst();
      cancelEvery();
    };
  }

  private stopDiscovery(sender: string): void {
    if (!this.powered) throw dbusError(BluezErrors.NotReady, BluezTexts.notReady);
    if (!this.sessions.has(sender)) throw dbusError(BluezErrors.Failed, BluezTexts.noDiscovery);
    this.sessions.delete(sender);
    this.presetFilters.delete(sender);
    if (this.sessions.size === 0) this.endDiscovery();
  }

  private setDiscoveryFilter(sender: string, filter: unknown): void {
    if (!this.powered) throw dbusError(BluezErrors.NotReady, BluezTexts.notReady);
    if (typeof filter !== 'object' || filter === null) {
      throw dbusError(BluezErrors.InvalidArguments, 'Invalid arguments in method call');
    }
    for (const key of Object.keys(filter)) {
      if (!FILTER_KEYS.includes(key))
        throw dbusError(BluezErrors.InvalidArguments, 'Invalid arguments in method call');
    }
    if (Object.keys(filter).length === 0) this.presetFilters.delete(sender);
    else this.presetFilters.set(sender, filter as Record<string, unknown>);
  }

  private endDiscovery(): void {
    this.stopScan?.();
    this.stopScan = undefined;
    if (!this.discovering) return;
    this.discovering = false;
    this.ctx.bus.changed(this.iface, ['Discovering']);
    for (const d of this.devices.values()) d.discoveryEnded();
  }

  /** A bus client left: its discovery session and notify sessions end. */
  clientGone(sender: string): void {
    this.presetFilters.delete(sender);
    if (this.sessions.delete(sender) && this.sessions.size === 0) this.endDiscovery();
    for (const d of this.devices.values()) d.clientGone(sender);
  }

  /** One advertising interval: every audible, advertising peripheral is seen. */
  private scanTick(): void {
    if (!this.discovering) return;
    for (const p of this.ctx.world.peripherals.values()) {
      if (!this.reachable(p)) continue;
      const existing = this.devices.get(p.address);
      if (existing?.connected) continue; // a connected peripheral stops advertising
      const rssi = this.ctx.world.rssi(p, this.name);
      if (!existing && !this.passesFilters(p, rssi)) continue;
      if (existing) existing.seen(rssi, p.spec.txPower);
      // A new device is announced with what the advertisement carried (InterfacesAdded has RSSI).
      else this.addDevice(p, true, { rssi, txPower: p.spec.txPower });
    }
  }

  /**
   * Discovery filters as bluetoothd merges them: a client without a filter
   * sees everything; otherwise a new device is reported when it matches one
   * client's filter (UUIDs intersect the advertised ones, RSSI at or above the
   * threshold, Transport not "bredr" since every simulated device is LE).
   */
  private passesFilters(p: Peripheral, rssi: number): boolean {
    const filters = [...this.sessions].map((s) => this.presetFilters.get(s));
    if (filters.length === 0 || filters.some((f) => f === undefined)) return true;
    const advertised = new Set((p.spec.uuids ?? []).map((u) => u.toLowerCase()));
    const value = (f: Record<string, unknown>, key: string) =>
      (f[key] as { value?: unknown } | undefined)?.value;
    return filters.some((f) => {
      if (!f) return true;
      if (value(f, 'Transport') === 'bredr') return false;
      const uuids = value(f, 'UUIDs');
      if (
        Array.isArray(uuids) &&
        uuids.length > 0 &&
        !uuids.some((u) => advertised.has(String(u).toLowerCase()))
      ) {
        return false;
      }
      const min = value(f, 'RSSI');
      return typeof min !== 'number' || rssi >= min;
    });
  }

  // ---- devices ------------------------------------------------------------

  reachable(p: Peripheral): boolean {
    return (
      this.controller.present &&
      this.powered &&
      this.ctx.world.peripherals.get(p.address) === p &&
      this.ctx.world.inRange(p, this.name) &&
      !this.ctx.faults.forDevice('disappear', this.name, p.address)
    );
  }

  linkCount(): number {
    let n = 0;
    for (const d of this.devices.values()) if (d.connected) n += 1;
    return n;
  }

  slotLimit(): number {
    const fault = this.ctx.faults.forAdapter('slot-limit', this.name);
    return Math.min(this.controller.spec.slotLimit ?? Infinity, fault ? fault.spec.slots : Infinity);
  }

  addDevice(
    p: Peripheral,
    temporary: boolean,
    seen?: { rssi: number; txPower: number | undefined },
  ): SimDevice {
    const existing = this.devices.get(p.address);
    if (existing) return existing;
    const d = new SimDevice(this.ctx, this, p, { temporary });
    if (seen) {
      d.rssi = seen.rssi;
      d.txPower = seen.txPower;
    }
    this.devices.set(p.address, d);
    this.ctx.bus.add({ path: d.path, interfaces: [d.iface] });
    if (temporary) d.restartExpiry();
    return d;
  }

  expire(d: SimDevice): void {
    this.dropDevice(d);
  }

  /** Removes the Device1 object (and its GATT objects) without any ceremony. */
  dropDevice(d: SimDevice): void {
    if (this.devices.get(d.address) !== d) return;
    d.dispose();
    this.devices.delete(d.address);
    this.ctx.bus.remove(d.path);
  }

  private async removeDevicePath(path: string): Promise<void> {
    const call = this.ctx.bus.currentCall; // read before the first await
    const d = [...this.devices.values()].find((x) => x.path === path);
    if (!d) throw dbusError(BluezErrors.DoesNotExist, BluezTexts.doesNotExist);
    if (!this.powered) throw dbusError(BluezErrors.NotReady, BluezTexts.notReady);
    // bluetoothd 5.66 answers RemoveDevice when the link is down (device_remove_connection
    // replies to the pending RemoveDevice), then unregisters the object at once; the
    // InterfacesRemoved signals travel behind the reply, and a client has been seen (conformance
    // run) to process the reply before them. The signals therefore follow the reply a moment later.
    await this.removeDevice(d, (drop) =>
      this.ctx.bus.afterReply(call, () => {
        const announce = this.ctx.bus.holdRemovals(drop);
        this.ctx.timers.after(REMOVAL_SIGNAL_DELAY_MS, announce);
      }),
    );
  }

  /**
   * Adapter1.RemoveDevice: disconnects first, forgets pairing and storage, removes the object.
   * `schedule` decides when the object goes (default: at once).
   */
  async removeDevice(d: SimDevice, schedule: (drop: () => void) => void = (drop) => drop()): Promise<void> {
    // Faults that live on this device's bluetoothd state end with it.
    for (const kind of ['stale-in-progress', 'phantom'] as const) {
      for (const f of this.ctx.faults.allForDevice(kind, this.name, d.address)) {
        if ('device' in f.spec.target) this.ctx.faults.remove(f);
      }
    }
    await d.prepareRemoval();
    d.peripheral.known.delete(this.name);
    d.peripheral.paired = false;
    schedule(() => this.dropDevice(d));
  }

  /** The adapter leaves (unplug, bluetoothd exit): everything under it goes, silently or not. */
  destroy(silent: boolean): void {
    this.destroyed = true;
    this.sessions.clear();
    this.stopScan?.();
    this.stopScan = undefined;
    for (const d of [...this.devices.values()]) {
      if (!silent) d.linkLost();
      d.dispose();
      this.devices.delete(d.address);
      this.ctx.bus.remove(d.path, silent);
    }
    this.ctx.bus.remove(this.path, silent);
  }

  state(): AdapterState {
    return {
      name: this.name,
      address: this.controller.address,
      powered: this.powered,
      discovering: this.discovering,
      discoveryClients: [...this.sessions],
      devices: [...this.devices.values()].map((d) => d.state()),
    };
  }
}
