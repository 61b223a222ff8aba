/**
 * GATT objects of one connected device, as bluetoothd's gatt-client exports
 * them: /…/dev_XX/serviceHHHH/charHHHH/descHHHH, named by attribute handle.
 * The bytes live on the peripheral (World); the D-Bus `Value` property is
 * bluetoothd's cache, updated by reads and notifications only (a WriteValue
 * does not change it, as in BlueZ).
 */
import type { DaemonContext } from './context.js';
import { DaemonStopped } from './context.js';
import { createInterface } from './exported.js';
import type { ExportedInterface } from './exported.js';
import {
  BluezErrors,
  BluezTexts,
  GATT_CHARACTERISTIC1,
  GATT_DESCRIPTOR1,
  GATT_SERVICE1,
} from './bluez-interfaces.js';
import { dbusError } from './sim-bus.js';
import type { CharacteristicSpec, DescriptorSpec, ServiceSpec } from './types.js';

/** What the GATT objects need from their device. */
export interface GattOwner {
  readonly path: string;
  readonly adapterName: string;
  readonly address: string;
  /** The link is up (GATT requests can be sent). */
  linkUp(): boolean;
  /** Notifications are being swallowed (zombie link). */
  zombie(): boolean;
}

const MTU = 247;

function readOffset(options: unknown): number {
  const o = (options ?? {}) as Record<string, { value?: unknown }>;
  const v = o.offset?.value;
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : 0;
}

function writeType(options: unknown): string | undefined {
  const o = (options ?? {}) as Record<string, { value?: unknown }>;
  const v = o.type?.value;
  return typeof v === 'string' ? v : undefined;
}

function toBytes(v: unknown): number[] {
  if (Buffer.isBuffer(v)) return [...v];
  if (Array.isArray(v)) return v.map((b) => Number(b) & 0xff);
  throw dbusError(BluezErrors.InvalidArguments, 'Invalid arguments in method call');
}

export class GattDescriptor {
  readonly iface: ExportedInterface;
  /** bluetoothd's cached value; the property is absent until something was read. */
  cached: number[] | undefined;
  constructor(
    readonly path: string,
    readonly handle: number,
    readonly spec: DescriptorSpec,
    readonly chrc: GattCharacteristic,
  ) {
    this.iface = createInterface(GATT_DESCRIPTOR1, {
      get: (name) => {
        switch (name) {
          case 'UUID':
            return spec.uuid.toLowerCase();
          case 'Characteristic':
            return chrc.path;
          case 'Value':
            return this.cached === undefined ? undefined : Buffer.from(this.cached);
          default:
            return undefined;
        }
      },
      call: (member, args) => this.call(member, args),
    });
  }

  private async call(member: string, args: unknown[]): Promise<unknown> {
    const ctx = this.chrc.ctx;
    if (!this.chrc.owner.linkUp()) throw dbusError(BluezErrors.Failed, 'Not connected');
    if (!(await ctx.timers.sleep(ctx.timing.gattMs))) throw new DaemonStopped();
    if (!this.chrc.owner.linkUp()) throw dbusError(BluezErrors.Failed, 'Not connected');
    if (member === 'ReadValue') {
      const bytes = (this.spec.value ?? []).slice(readOffset(args[0]));
      this.cached = bytes;
      this.chrc.ctx.bus.changed(this.iface, ['Value']);
      return Buffer.from(bytes);
    }
    if (member === 'WriteValue') {
      this.spec.value = toBytes(args[0]);
      return undefined;
    }
    throw dbusError(BluezErrors.NotSupported, BluezTexts.notSupported);
  }
}

export class GattCharacteristic {
  readonly iface: ExportedInterface;
  readonly descriptors: GattDescriptor[] = [];
  /** bluetoothd's cached Value (what the D-Bus property shows); absent until read or notified. */
  cached: number[] | undefined;
  /** Bus names with a notify session (StartNotify). */
  readonly sessions = new Set<string>();
  private counter = 0;
  private stopTicker: (() => void) | undefined;

  constructor(
    readonly ctx: DaemonContext,
    readonly owner: GattOwner,
    readonly path: string,
    readonly handle: number,
    readonly spec: CharacteristicSpec,
    readonly service: GattService,
  ) {
    this.iface = createInterface(GATT_CHARACTERISTIC1, {
      get: (name) => {
        switch (name) {
          case 'UUID':
            return spec.uuid.toLowerCase();
          case 'Service':
            return service.path;
          case 'Value':
            return this.cached === undefined ? undefined : Buffer.from(this.cached);
          case 'Notifying':
            return spec.flags.includes('notify') || spec.flags.includes('indicate')
              ? this.notifying
              : undefined;
          case 'Flags':
            return spec.flags;
          case 'MTU':
            return owner.linkUp() ? MTU : undefined;
          // As bluetoothd 5.66 (src/gatt-client.c characteristic_*_acquired_exists): NotifyAcquired
          // exists when the characteristic can notify (not for indicate-only), WriteAcquired when it
          // can be written without response; both stay false, since AcquireNotify/AcquireWrite are
          // not modelled (below).
          case 'NotifyAcquired':
            return spec.flags.includes('notify') ? false : undefined;
          case 'WriteAcquired':
            return spec.flags.includes('write-without-response') ? false : undefined;
          default:
            return undefined;
        }
      },
      call: (member, args) => this.call(member, args),
    });
  }

  get notifying(): boolean {
    return this.sessions.size > 0;
  }

  get uuid(): string {
    return this.spec.uuid.toLowerCase();
  }

  private async roundTrip(): Promise<void> {
    if (!this.owner.linkUp()) throw dbusError(BluezErrors.Failed, 'Not connected');
    if (!(await this.ctx.timers.sleep(this.ctx.timing.gattMs))) throw new DaemonStopped();
    if (!this.owner.linkUp()) throw dbusError(BluezErrors.Failed, 'Not connected');
  }

  private async call(member: string, args: unknown[]): Promise<unknown> {
    const sender = this.ctx.bus.currentSender; // read before the first await
    switch (member) {
      case 'ReadValue': {
        if (!this.spec.flags.includes('read')) {
          await this.roundTrip();
          throw dbusError(BluezErrors.NotPermitted, 'Read not permitted');
        }
        await this.roundTrip();
        const bytes = (this.spec.value ?? []).slice(readOffset(args[0]));
        this.setCached(bytes);
        return Buffer.from(bytes);
      }
      case 'WriteValue': {
        const value = toBytes(args[0]);
        const type = writeType(args[1]);
        const canRequest = this.spec.flags.includes('write') || this.spec.flags.includes('reliable-write');
        const canCommand = this.spec.flags.includes('write-without-response');
        const asCommand = type === 'command' ? canCommand : !canRequest && canCommand && type === undefined;
        if (!asCommand && !canRequest) throw dbusError(BluezErrors.NotSupported, BluezTexts.notSupported);
        if (!this.owner.linkUp()) throw dbusError(BluezErrors.Failed, 'Not connected');
        if (!asCommand) await this.roundTrip();
        this.spec.value = value;
        this.ctx.recordWrite({
          at: this.ctx.now(),
          adapter: this.owner.adapterName,
          address: this.owner.address,
          uuid: this.uuid,
          value,
          type: asCommand ? 'command' : 'request',
        });
        return undefined;
      }
      case 'StartNotify':
        if (!this.spec.flags.includes('notify') && !this.spec.flags.includes('indicate')) {
          throw dbusError(BluezErrors.NotSupported, BluezTexts.notSupported);
        }
        if (this.sessions.has(sender)) return undefined;
        await this.roundTrip(); // the CCCD write
        this.sessions.add(sender);
        if (this.sessions.size === 1) {
          this.ctx.bus.changed(this.iface, ['Notifying']);
          this.startTicker();
        }
        return undefined;
      case 'StopNotify':
        if (!this.sessions.has(sender)) throw dbusError(BluezErrors.Failed, 'No notify session started');
        this.dropSession(sender);
        return undefined;
      case 'AcquireWrite':
      case 'AcquireNotify':
        // bluetoothd answers with one end of a socketpair (a unix fd). dbus-next passes fds only
        // with the native `usocket` package, which this project does not depend on: not modelled.
        throw dbusError(
          BluezErrors.NotSupported,
          `${member} is not modelled by the simulator (no unix fd passing); use ${member === 'AcquireNotify' ? 'StartNotify' : 'WriteValue'}`,
        );
      default:
        throw dbusError(BluezErrors.NotSupported, BluezTexts.notSupported);
    }
  }

  /** A bus client went away or stopped notifications. */
  dropSession(sender: string): void {
    if (!this.sessions.delete(sender)) return;
    if (this.sessions.size === 0) {
      this.stopTicker?.();
      this.stopTicker = undefined;
      this.ctx.bus.changed(this.iface, ['Notifying']);
    }
  }

  private setCached(bytes: number[]): void {
    this.cached = bytes;
    this.ctx.bus.changed(this.iface, ['Value']);
  }

  private startTicker(): void {
    const every = this.spec.notifyIntervalMs;
    if (every === undefined || this.stopTicker) return;
    this.stopTicker = this.ctx.timers.every(every, () => {
      this.counter = (this.counter + 1) & 0xff;
      const rest = (this.spec.value ?? []).slice(1);
      this.notify([this.counter, ...rest]);
    });
  }

  /** The peripheral sends a notification. Returns whether bluetoothd delivered it to D-Bus. */
  notify(bytes: number[]): boolean {
    this.spec.value = bytes;
    if (!this.notifying || !this.owner.linkUp() || this.owner.zombie()) return false;
    this.setCached(bytes);
    return true;
  }

  stop(): void {
    this.stopTicker?.();
    this.stopTicker = undefined;
  }
}

export class GattService {
  readonly iface: ExportedInterface;
  readonly characteristics: GattCharacteristic[] = [];
  constructor(
    readonly path: string,
    readonly handle: number,
    readonly spec: ServiceSpec,
    owner: GattOwner,
  ) {
    this.iface = createInterface(GATT_SERVICE1, {
      get: (name) => {
        switch (name) {
          case 'UUID':
            return spec.uuid.toLowerCase();
          case 'Primary':
            return spec.primary ?? true;
          case 'Device':
            return owner.path;
          case 'Includes':
            return [];
          default:
            return undefined;
        }
      },
      call: () => {
        throw dbusError(BluezErrors.NotSupported, BluezTexts.notSupported);
      },
    });
  }
}

const hex4 = (n: number) => n.toString(16).padStart(4, '0');

/** The exported GATT database of one device on one adapter. */
export class GattTree {
  readonly services: GattService[] = [];
  private exported = false;

  /**
   * @param reuse - services of the tree this one replaces that are kept as they are (the part of
   *   the database before a Service Changed range): the same objects, still exported.
   */
  constructor(
    private readonly ctx: DaemonContext,
    owner: GattOwner,
    specs: ServiceSpec[],
    reuse: readonly GattService[] = [],
  ) {
    // Handles as a real database would number them: service declaration, then
    // per characteristic a declaration and a value handle, then its descriptors.
    let handle = 0x0010;
    for (const [index, s] of specs.entries()) {
      const kept = reuse[index];
      if (kept !== undefined) {
        this.services.push(kept);
        handle =
          (kept.handle + 1 + kept.characteristics.reduce((n, c) => n + 2 + c.descriptors.length, 0) + 0x10) &
          ~0x0f;
        continue;
      }
      const svc = new GattService(`${owner.path}/service${hex4(handle)}`, handle, s, owner);
      handle += 1;
      for (const c of s.characteristics) {
        const chrc = new GattCharacteristic(ctx, owner, `${svc.path}/char${hex4(handle)}`, handle, c, svc);
        handle += 2;
        for (const d of c.descriptors ?? []) {
          chrc.descriptors.push(new GattDescriptor(`${chrc.path}/desc${hex4(handle)}`, handle, d, chrc));
          handle += 1;
        }
        svc.characteristics.push(chrc);
      }
      this.services.push(svc);
      handle = (handle + 0x10) & ~0x0f;
    }
  }

  get isExported(): boolean {
    return this.exported;
  }

  export(): void {
    if (this.exported) return;
    this.exported = true;
    for (const s of this.services) {
      this.ctx.bus.add({ path: s.path, interfaces: [s.iface] });
      for (const c of s.characteristics) {
        this.ctx.bus.add({ path: c.path, interfaces: [c.iface] });
        for (const d of c.descriptors) this.ctx.bus.add({ path: d.path, interfaces: [d.iface] });
      }
    }
  }

  /**
   * Exports the services from index `from` on; those before it are taken as exported already
   * (kept from the tree this one replaced).
   */
  exportFrom(from: number): void {
    if (this.exported) return;
    this.exported = true;
    for (const s of this.services.slice(from)) {
      this.ctx.bus.add({ path: s.path, interfaces: [s.iface] });
      for (const c of s.characteristics) {
        this.ctx.bus.add({ path: c.path, interfaces: [c.iface] });
        for (const d of c.descriptors) this.ctx.bus.add({ path: d.path, interfaces: [d.iface] });
      }
    }
  }

  /**
   * The removal steps of the services from index `from` on, in bluetoothd's order (each
   * service's descriptors, then characteristics, then the service; the database's order), each
   * removing one object. Their notify sessions end at once; the tree counts as unexported.
   */
  removalSteps(from: number): Array<() => void> {
    const doomed = this.services.slice(from);
    for (const s of doomed) for (const c of s.characteristics) c.stop();
    if (!this.exported) return [];
    this.exported = false;
    const steps: Array<() => void> = [];
    for (const s of doomed) {
      for (const c of s.characteristics) {
        for (const d of c.descriptors) steps.push(() => this.ctx.bus.remove(d.path));
        steps.push(() => this.ctx.bus.remove(c.path));
      }
      steps.push(() => this.ctx.bus.remove(s.path));
    }
    return steps;
  }

  /** Removes the objects (children first, as bluetoothd does). */
  unexport(): void {
    for (const c of this.characteristics()) c.stop();
    if (!this.exported) return;
    this.exported = false;
    for (const s of [...this.services].reverse()) {
      for (const c of [...s.characteristics].reverse()) {
        for (const d of [...c.descriptors].reverse()) this.ctx.bus.remove(d.path);
        this.ctx.bus.remove(c.path);
      }
      this.ctx.bus.remove(s.path);
    }
  }

  characteristics(): GattCharacteristic[] {
    return this.services.flatMap((s) => s.characteristics);
  }

  find(uuid: string): GattCharacteristic | undefined {
    const u = uuid.toLowerCase();
    return this.characteristics().find((c) => c.uuid === u);
  }
}
