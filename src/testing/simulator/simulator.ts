/**
 * The BlueZ simulator's control surface: build a world of adapters and
 * peripherals, inject faults, and watch what clients did. Everything a client
 * sees goes over D-Bus exactly as with bluetoothd.
 */
import { performance } from 'node:perf_hooks';
import { Bluetoothd } from './bluetoothd.js';
import type { BluezBehaviour, BluezBehaviourOption, GattWrite } from './context.js';
import { resolveBehaviour } from './context.js';
import type { AdapterState } from './adapter.js';
import { FaultBook, targetsAdapter, targetsDevice } from './faults.js';
import type { ActiveFault } from './faults.js';
import { Timers, resolveTiming } from './timing.js';
import type { FullTiming } from './timing.js';
import type {
  AdapterSpec,
  DeviceSpec,
  FaultHandle,
  FaultSpec,
  Scenario,
  ServiceSpec,
  SimCall,
  SimTiming,
} from './types.js';
import {
  validateAdapterSpec,
  validateBehaviour,
  validateDeviceSpec,
  validateFault,
  validateScenario,
  validateServiceSpec,
} from './validate.js';
import { World, normalizeMac } from './world.js';
import type { Peripheral } from './world.js';
import type { SimDevice } from './device.js';

export type { AdapterState } from './adapter.js';
export type { DeviceState } from './device.js';
export type { BluezBehaviour, BluezBehaviourOption, BluezBehaviourPreset, GattWrite } from './context.js';
export { BEHAVIOUR_PRESETS, DEFAULT_BEHAVIOUR } from './context.js';

/** Options of {@link BluezSimulator.start}. */
export interface BluezSimulatorOptions {
  /** Address of the (private) bus to serve on, e.g. `PrivateBus.address`. */
  busAddress: string;
  scenario?: Scenario;
  /** Multiplies every default latency (1 = realistic; 0.01 for fast tests). Overrides scenario.latencyScale. */
  latencyScale?: number;
  /** Explicit latencies (taken as given, not scaled). Merged over scenario.timing. */
  timing?: Partial<SimTiming>;
  /**
   * BlueZ version / main.conf switches; see {@link BluezBehaviour}. A preset name
   * (`'bluez-5.66'`) sets every answer of that release; single switches may follow a preset
   * (`{ preset: 'bluez-5.66', gattCache: 'no' }`). Applied over `scenario.behaviour`.
   */
  behaviour?: BluezBehaviourOption;
}

/** A plain snapshot of the simulated host for assertions. */
export interface SimState {
  /** False while bluetoothd is down (restart-daemon). */
  daemonRunning: boolean;
  /** Unique bus name of the current bluetoothd connection ('' while down). */
  busName: string;
  adapters: AdapterState[];
  faults: FaultSpec[];
  /** Every object path bluetoothd exports right now (empty while down). */
  objects: string[];
}

/** A BlueZ stand-in that serves org.bluez on a bus from its own dbus-next connection. */
export class BluezSimulator {
  private daemon: Bluetoothd | undefined;
  private readonly world = new World();
  private readonly faults = new FaultBook();
  private readonly timers = new Timers();
  private readonly callLog: SimCall[] = [];
  private readonly writes: GattWrite[] = [];
  private readonly t0 = performance.now();
  private stopped = false;
  private restarting: Promise<void> | undefined;

  private constructor(
    private readonly busAddress: string,
    readonly timing: FullTiming,
    /** The BlueZ answers in effect (defaults, preset and switches resolved). */
    readonly behaviour: Readonly<BluezBehaviour>,
  ) {}

  /** Connects to the bus, takes org.bluez and builds the scenario's world. */
  static async start(opts: BluezSimulatorOptions): Promise<BluezSimulator> {
    if (
      typeof opts !== 'object' ||
      opts === null ||
      typeof opts.busAddress !== 'string' ||
      opts.busAddress === ''
    ) {
      throw new TypeError('BluezSimulator.start: busAddress must be a D-Bus address string');
    }
    const scenario = opts.scenario === undefined ? undefined : validateScenario(opts.scenario);
    const timing = resolveTiming(opts.latencyScale ?? scenario?.latencyScale ?? 1, {
      ...scenario?.timing,
      ...opts.timing,
    });
    const behaviour = resolveBehaviour(
      scenario?.behaviour,
      opts.behaviour === undefined ? undefined : validateBehaviour(opts.behaviour),
    );
    const sim = new BluezSimulator(opts.busAddress, timing, behaviour);
    for (const a of scenario?.adapters ?? []) sim.world.addController(a);
    for (const d of scenario?.devices ?? []) sim.world.addPeripheral(d);
    sim.daemon = await Bluetoothd.start(sim.deps());
    for (const f of scenario?.faults ?? []) sim.inject(f);
    return sim;
  }

  private deps() {
    return {
      busAddress: this.busAddress,
      world: this.world,
      faults: this.faults,
      timing: this.timing,
      behaviour: this.behaviour,
      calls: this.callLog,
      now: () => this.now(),
      recordWrite: (w: GattWrite) => this.writes.push(w),
    };
  }

  private now(): number {
    return performance.now() - this.t0;
  }

  private assertRunning(what: string): void {
    if (this.stopped) throw new Error(`BluezSimulator.${what}: the simulator was stopped`);
  }

  /** Every method call bluetoothd received, in order (also while stalled or hung). */
  get calls(): readonly SimCall[] {
    return this.callLog;
  }

  clearCalls(): void {
    this.callLog.length = 0;
  }

  /** Every GATT write the peripherals received, in order. */
  get gattWrites(): readonly GattWrite[] {
    return this.writes;
  }

  /** Plugs in a controller; bluetoothd announces it with InterfacesAdded. */
  addAdapter(spec: AdapterSpec): void {
    this.assertRunning('addAdapter');
    validateAdapterSpec(spec);
    const c = this.world.addController({ ...spec });
    this.daemon?.plug(c);
  }

  /** Unplugs a controller for good: its devices and the adapter vanish (InterfacesRemoved). */
  removeAdapter(name: string): void {
    this.assertRunning('removeAdapter');
    if (!this.world.controllers.has(name))
      throw new RangeError(`removeAdapter: no adapter named ${JSON.stringify(name)}`);
    this.daemon?.unplug(name);
    this.world.controllers.delete(name);
  }

  /** Puts a peripheral in the air (and in bluetoothd's cache on `knownOn` adapters). */
  addDevice(spec: DeviceSpec): void {
    this.assertRunning('addDevice');
    validateDeviceSpec(spec);
    const p = this.world.addPeripheral(spec);
    for (const a of this.daemon?.adapters.values() ?? []) {
      if (p.known.has(a.name) || (p.paired && p.spec.knownOn === undefined)) a.addDevice(p, false);
    }
  }

  /**
   * The peripheral leaves the world (switched off for good): links drop; the
   * Device1 objects stay as bluetoothd keeps them (temporary ones expire).
   */
  removeDevice(address: string): void {
    this.assertRunning('removeDevice');
    const p = this.peripheral(address, 'removeDevice');
    this.world.peripherals.delete(p.address);
    this.forDevices(p.address, undefined, (d) => d.linkLost());
  }

  /** Which adapters hear the peripheral; links on adapters that lose it drop. */
  setInRange(address: string, inRange: boolean | string[]): void {
    this.assertRunning('setInRange');
    const p = this.peripheral(address, 'setInRange');
    if (
      typeof inRange !== 'boolean' &&
      !(Array.isArray(inRange) && inRange.every((s) => typeof s === 'string'))
    ) {
      throw new TypeError('setInRange: inRange must be a boolean or a list of adapter names');
    }
    p.inRange = inRange;
    this.dropUnreachable(p);
  }

  /**
   * The peripheral grows a service while running (firmware update, an app registering its
   * GATT service late) and indicates Service Changed. Every central with a resolved link to it
   * sees its GATT objects removed and, after the re-discovery (resolveServicesMs), exported again
   * with the new service; the link and ServicesResolved=true stay. Centrals without a link find
   * the new database when they next connect. The spec is validated first (TypeError naming the
   * field); a UUID the peripheral already serves is a RangeError.
   */
  addService(address: string, service: ServiceSpec): void {
    this.assertRunning('addService');
    const p = this.peripheral(address, 'addService');
    validateServiceSpec(service, 'addService: service');
    const uuid = service.uuid.toLowerCase();
    if (p.services.some((s) => s.uuid.toLowerCase() === uuid)) {
      throw new RangeError(`addService: ${p.address} already serves ${service.uuid}`);
    }
    p.services.push(structuredClone(service));
    p.gattVersion += 1;
    this.forDevices(p.address, undefined, (d) => d.serviceChanged());
  }

  /** The peripheral sends a notification on `characteristicUuid`. Returns how many links delivered it. */
  notify(address: string, characteristicUuid: string, bytes: number[] | Uint8Array): number {
    this.assertRunning('notify');
    const p = this.peripheral(address, 'notify');
    const value = [...bytes];
    if (!value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
      throw new TypeError('notify: bytes must be integers 0..255');
    }
    const uuid = characteristicUuid.toLowerCase();
    const chrc = p.services.flatMap((s) => s.characteristics).find((c) => c.uuid.toLowerCase() === uuid);
    if (!chrc) throw new RangeError(`notify: ${p.address} has no characteristic ${characteristicUuid}`);
    chrc.value = value;
    let delivered = 0;
    this.forDevices(p.address, undefined, (d) => {
      if (d.gatt?.isExported && d.gatt.find(uuid)?.notify(value)) delivered += 1;
    });
    return delivered;
  }

  /** The remote end drops the link now (on one adapter or all). */
  dropLink(address: string, adapter?: string): void {
    this.assertRunning('dropLink');
    const p = this.peripheral(address, 'dropLink');
    this.forDevices(p.address, adapter, (d) => d.linkLost());
  }

  /**
   * bluetoothd exits and starts again: org.bluez is released (pending callers
   * get NoReply), and after `downMs` a fresh object tree appears. Devices come
   * back only where bluetoothd's storage knows them (knownOn, paired, or once
   * connected); links and discovery sessions are gone.
   *
   * A clean exit (default, as `systemctl restart bluetooth` on 5.66) first
   * signals what bluetoothd's shutdown does: links drop (Connected=false,
   * ServicesResolved=false), adapters power off (Powered=false with
   * Discovering=false), then GATT objects, devices and adapters are removed
   * with InterfacesRemoved; the new bluetoothd powers the adapters on again.
   * `crash: true` is a bluetoothd that dies (SIGKILL, segfault): the name
   * vanishes without any of those signals and the adapters keep their power.
   */
  restartDaemon(opts: { downMs?: number; crash?: boolean } = {}): Promise<void> {
    this.assertRunning('restartDaemon');
    const downMs = opts.downMs ?? 0;
    if (!Number.isFinite(downMs) || downMs < 0) throw new RangeError('restartDaemon: downMs must be >= 0');
    if (opts.crash !== undefined && typeof opts.crash !== 'boolean')
      throw new TypeError('restartDaemon: crash must be a boolean');
    if (this.restarting) return this.restarting;
    this.restarting = (async () => {
      if (opts.crash) this.daemon?.stop();
      else this.daemon?.shutDown();
      this.daemon = undefined;
      if (downMs > 0 && !(await this.timers.sleep(downMs))) return;
      if (this.stopped) return;
      this.daemon = await Bluetoothd.start(this.deps());
    })().finally(() => {
      this.restarting = undefined;
    });
    return this.restarting;
  }

  /** Injects a fault (validated first). See {@link FaultSpec} for the catalogue. */
  inject(fault: FaultSpec): FaultHandle {
    this.assertRunning('inject');
    const spec = validateFault(fault);
    const f = this.faults.add(spec);
    this.applyNow(f);
    return {
      spec,
      clear: () => this.faults.remove(f),
    };
  }

  /** Effects a fault has at the moment it is injected (the rest is checked when bluetoothd acts). */
  private applyNow(f: ActiveFault): void {
    const spec = f.spec;
    const t = spec.target;
    const expireAfter = (ms: number | undefined) => {
      if (ms === undefined) return;
      const cancel = this.timers.after(ms, () => this.faults.remove(f));
      f.onClear.push(cancel);
    };
    switch (spec.kind) {
      case 'link-drop': {
        let any = false;
        this.forAllDevices((a, d) => {
          if (d.connected && targetsDevice(t, a, d.address)) {
            any = true;
            d.scheduleLinkDrop(spec.afterMs ?? 0);
          }
        });
        if (any) this.faults.remove(f);
        return;
      }
      case 'disappear':
        this.forAllDevices((a, d) => {
          if (d.connected && targetsDevice(t, a, d.address)) d.linkLost();
        });
        expireAfter(spec.forMs);
        return;
      case 'phantom':
        this.forAllDevices((a, d) => {
          if (targetsDevice(t, a, d.address)) d.becomePhantom();
        });
        return;
      case 'power-off':
        for (const c of this.world.controllers.values()) {
          if (!targetsAdapter(t, c.spec.name)) continue;
          this.setPower(c.spec.name, false);
          f.onClear.push(() => {
            if (!this.stopped) this.setPower(c.spec.name, true);
          });
        }
        return;
      case 'remove-adapter':
        for (const c of this.world.controllers.values()) {
          if (!targetsAdapter(t, c.spec.name) || !c.present) continue;
          c.present = false;
          this.daemon?.unplug(c.spec.name);
          f.onClear.push(() => {
            if (this.stopped || !this.world.controllers.has(c.spec.name)) return;
            c.present = true;
            c.powered = c.spec.powered ?? true;
            this.daemon?.plug(c);
          });
        }
        expireAfter(spec.forMs);
        return;
      case 'service-changed': {
        const grow = () => {
          this.faults.remove(f);
          if (!this.stopped && 'device' in t) this.addService(t.device, spec.service);
        };
        if (spec.afterMs === undefined) grow();
        else f.onClear.push(this.timers.after(spec.afterMs, grow));
        return;
      }
      case 'restart-daemon':
        this.faults.remove(f);
        void this.restartDaemon({
          ...(spec.downMs === undefined ? {} : { downMs: spec.downMs }),
          ...(spec.crash === undefined ? {} : { crash: spec.crash }),
        }).catch(() => undefined);
        return;
      case 'bus-stall': {
        const bus = this.daemon?.ctx.bus;
        bus?.stall(spec.ms);
        f.onClear.push(() => bus?.endStall());
        expireAfter(spec.ms);
        return;
      }
      default:
        return;
    }
  }

  private setPower(adapter: string, on: boolean): void {
    const a = this.daemon?.adapters.get(adapter);
    // Faults act underneath bluetoothd (mgmt, rfkill, another process), not through Adapter1.Powered.
    if (a) void a.setPowered(on, 'mgmt').catch(() => undefined);
    else {
      const c = this.world.controllers.get(adapter);
      if (c) c.powered = on;
    }
  }

  private peripheral(address: string, what: string): Peripheral {
    const mac = normalizeMac(address, `${what}: address`);
    const p = this.world.peripherals.get(mac);
    if (!p) throw new RangeError(`${what}: no simulated device ${mac}`);
    return p;
  }

  private forAllDevices(fn: (adapter: string, d: SimDevice) => void): void {
    for (const a of this.daemon?.adapters.values() ?? [])
      for (const d of [...a.devices.values()]) fn(a.name, d);
  }

  private forDevices(address: string, adapter: string | undefined, fn: (d: SimDevice) => void): void {
    for (const a of this.daemon?.adapters.values() ?? []) {
      if (adapter !== undefined && a.name !== adapter) continue;
      const d = a.devices.get(address);
      if (d) fn(d);
    }
  }

  private dropUnreachable(p: Peripheral): void {
    for (const a of this.daemon?.adapters.values() ?? []) {
      const d = a.devices.get(p.address);
      if (d?.connected && !a.reachable(p)) d.linkLost();
    }
  }

  /** A plain snapshot: adapters, devices with connected/servicesResolved/…, active faults. */
  state(): SimState {
    const running = this.daemon !== undefined;
    return {
      daemonRunning: running,
      busName: this.daemon?.ctx.bus.uniqueName ?? '',
      adapters: running
        ? [...(this.daemon?.adapters.values() ?? [])].map((a) => a.state())
        : [...this.world.controllers.values()].map((c) => ({
            name: c.spec.name,
            address: c.address,
            powered: c.powered,
            discovering: false,
            discoveryClients: [],
            devices: [],
          })),
      faults: this.faults.all().map((f) => f.spec),
      objects: this.daemon?.ctx.bus.paths() ?? [],
    };
  }

  /** Leaves the bus and cancels every timer. Calls still waiting are answered NoReply by the bus. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.faults.clearAll();
    this.timers.clearAll();
    await this.restarting?.catch(() => undefined);
    this.daemon?.stop();
    this.daemon = undefined;
  }
}
