import type { MessageBus, Variant } from 'dbus-next';
import { callWithDeadline } from './call.js';
import {
  AdvertisementObject,
  ApplicationObject,
  CharacteristicObject,
  ServiceObject,
} from './gatt-objects.js';
import type { PeripheralEvent, PeripheralServiceSpec } from './types.js';

/** Options of {@link HostPeripheral.start}. */
export interface HostPeripheralOptions {
  /** A bus on which bluetoothd (org.bluez) runs, e.g. a qemu guest's system bus over TCP. */
  bus: MessageBus;
  /** The adapter that plays the peripheral, e.g. `/org/bluez/hci1`. */
  adapterPath: string;
  /** Advertised local name. */
  localName: string;
  services: PeripheralServiceSpec[];
  /** Object path prefix for the exported objects. Default `/bzcm/peripheral`. */
  basePath?: string;
  /** Deadline of each call to bluetoothd. Default 15 s (software-emulated guests are slow). */
  callTimeoutMs?: number;
  /** Register the advertisement at start. Default true. */
  advertise?: boolean;
}

interface ExportedService {
  service: ServiceObject;
  characteristics: CharacteristicObject[];
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function validateServices(services: PeripheralServiceSpec[]): void {
  if (!Array.isArray(services)) throw new TypeError('services must be an array');
  for (const [i, service] of services.entries()) {
    if (!UUID_PATTERN.test(service.uuid))
      throw new TypeError(`services[${i}].uuid must be a lower-case 128-bit UUID`);
    for (const [j, chr] of service.characteristics.entries()) {
      if (!UUID_PATTERN.test(chr.uuid)) {
        throw new TypeError(`services[${i}].characteristics[${j}].uuid must be a lower-case 128-bit UUID`);
      }
      if (chr.notifyIntervalMs !== undefined && !(chr.notifyIntervalMs >= 10)) {
        throw new RangeError(`services[${i}].characteristics[${j}].notifyIntervalMs must be >= 10`);
      }
    }
  }
}

/**
 * A BLE peripheral served from this process through a real bluetoothd: a GATT application
 * (GattManager1.RegisterApplication) and an LE advertisement (LEAdvertisingManager1) on one
 * adapter. Tests drive it to produce what real devices do: stop advertising, stop notifying
 * while staying connected, vanish and come back, grow services late.
 *
 * bluetoothd calls back into the exported objects over the same bus, so the bus must be one
 * bluetoothd can reach (for a qemu guest: its system bus over the forwarded TCP port).
 */
export class HostPeripheral {
  /** Everything bluetoothd asked of the peripheral, in order. */
  readonly events: PeripheralEvent[] = [];
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly exported: ExportedService[] = [];
  private readonly application: ApplicationObject;
  private readonly advertisement: AdvertisementObject;
  private applicationRegistered = false;
  /** Registered with bluetoothd right now. */
  private advertising = false;
  /** What the test asked for; a re-advertise in flight must not undo a later stop. */
  private wantAdvertising = false;
  /** Advertising operations run one after another (register/unregister must not interleave). */
  private advertisingQueue: Promise<void> = Promise.resolve();

  private constructor(private readonly options: HostPeripheralOptions) {
    this.base = options.basePath ?? '/bzcm/peripheral';
    this.timeoutMs = options.callTimeoutMs ?? 15_000;
    const sink = (event: PeripheralEvent): void => {
      this.events.push(event);
    };
    this.application = new ApplicationObject(() => this.managedObjects());
    this.advertisement = new AdvertisementObject(
      options.localName,
      () => this.exported.map((s) => s.service.UUID),
      sink,
    );
    options.bus.export(this.base, this.application);
    options.bus.export(`${this.base}/adv`, this.advertisement);
    for (const spec of options.services) this.exportService(spec, sink);
  }

  /** Exports the objects, registers the GATT application and (by default) advertises. */
  static async start(options: HostPeripheralOptions): Promise<HostPeripheral> {
    if (typeof options.adapterPath !== 'string' || !options.adapterPath.startsWith('/org/bluez/')) {
      throw new TypeError('adapterPath must be an adapter object path such as /org/bluez/hci1');
    }
    if (typeof options.localName !== 'string' || options.localName.length === 0) {
      throw new TypeError('localName must be a non-empty string');
    }
    validateServices(options.services);
    const peripheral = new HostPeripheral(options);
    try {
      await peripheral.register({ advertise: options.advertise ?? true });
    } catch (err) {
      // Nothing stays exported (or registered) when the peripheral could not start.
      await peripheral.stop();
      throw err;
    }
    return peripheral;
  }

  /** Whether bluetoothd currently has our GATT application / advertisement. */
  get state(): { applicationRegistered: boolean; advertising: boolean } {
    return { applicationRegistered: this.applicationRegistered, advertising: this.advertising };
  }

  /** Registers the GATT application and, unless told otherwise, the advertisement. */
  async register(opts: { advertise?: boolean } = {}): Promise<void> {
    await this.adapterCall('org.bluez.GattManager1', 'RegisterApplication', 'oa{sv}', [this.base, {}]);
    this.applicationRegistered = true;
    if (opts.advertise ?? true) await this.startAdvertising();
  }

  /** Unregisters the advertisement and the GATT application (errors from a gone bluetoothd are ignored). */
  async unregister(): Promise<void> {
    await this.stopAdvertising();
    if (this.applicationRegistered) {
      this.applicationRegistered = false;
      await this.adapterCall('org.bluez.GattManager1', 'UnregisterApplication', 'o', [this.base]).catch(
        () => {},
      );
    }
    for (const s of this.exported) for (const c of s.characteristics) c.dispose();
  }

  /**
   * Forgets the registrations without telling bluetoothd: after bluetoothd restarted (it lost
   * them) call this, then {@link register}.
   */
  forgetRegistrations(): void {
    this.applicationRegistered = false;
    this.advertising = false;
    for (const s of this.exported) for (const c of s.characteristics) c.dispose();
  }

  async startAdvertising(): Promise<void> {
    this.wantAdvertising = true;
    await this.inAdvertisingQueue(() => this.registerAdvertisement());
  }

  /**
   * Withdraws and re-registers the advertisement (no-op when not advertising). A real radio
   * advertises continuously; btvirt's emulated controller reports an advertiser once per scan
   * start, so a test harness calls this while a central scans to model the continuous part.
   * It runs in the advertising queue and re-registers only if nobody asked to stop meanwhile: a
   * re-advertise racing a test's stopAdvertising once made the "second Connect while one is
   * pending" scenario connect at once on real BlueZ.
   */
  async readvertise(): Promise<void> {
    await this.inAdvertisingQueue(async () => {
      if (!this.wantAdvertising || !this.advertising) return;
      await this.unregisterAdvertisement();
      if (this.wantAdvertising) await this.registerAdvertisement();
    });
  }

  async stopAdvertising(): Promise<void> {
    this.wantAdvertising = false;
    await this.inAdvertisingQueue(() => this.unregisterAdvertisement());
  }

  private inAdvertisingQueue(step: () => Promise<void>): Promise<void> {
    const run = this.advertisingQueue.then(step);
    this.advertisingQueue = run.catch(() => {});
    return run;
  }

  private async registerAdvertisement(): Promise<void> {
    if (this.advertising) return;
    await this.adapterCall('org.bluez.LEAdvertisingManager1', 'RegisterAdvertisement', 'oa{sv}', [
      `${this.base}/adv`,
      {},
    ]);
    this.advertising = true;
  }

  private async unregisterAdvertisement(): Promise<void> {
    if (!this.advertising) return;
    this.advertising = false;
    await this.adapterCall('org.bluez.LEAdvertisingManager1', 'UnregisterAdvertisement', 'o', [
      `${this.base}/adv`,
    ]).catch(() => {});
  }

  /**
   * Adds a service after start. bluetoothd reads the application tree only at registration, so
   * a registered application is re-registered; a connected central sees Service Changed.
   */
  async addService(spec: PeripheralServiceSpec): Promise<void> {
    validateServices([spec]);
    const wasRegistered = this.applicationRegistered;
    if (wasRegistered) {
      this.applicationRegistered = false;
      await this.adapterCall('org.bluez.GattManager1', 'UnregisterApplication', 'o', [this.base]);
    }
    this.exportService(spec, (event) => this.events.push(event));
    if (wasRegistered) {
      await this.adapterCall('org.bluez.GattManager1', 'RegisterApplication', 'oa{sv}', [this.base, {}]);
      this.applicationRegistered = true;
    }
  }

  /** Changes how often a characteristic notifies while subscribed (undefined: never by itself). */
  setNotifyInterval(uuid: string, ms: number | undefined): void {
    if (ms !== undefined && !(ms >= 10)) throw new RangeError('ms must be >= 10 or undefined');
    this.characteristic(uuid).setNotifyInterval(ms);
  }

  /** The zombie peripheral: notifications stop while the link and the subscription stay up. */
  stopNotifying(uuid: string): void {
    this.characteristic(uuid).setPaused(true);
  }

  resumeNotifying(uuid: string): void {
    this.characteristic(uuid).setPaused(false);
  }

  /** Sends one notification now; false when no central is subscribed. */
  notify(uuid: string, value?: number[]): boolean {
    return this.characteristic(uuid).notify(value);
  }

  /** Current value of a characteristic (what the last write put there). */
  value(uuid: string): number[] {
    return [...this.characteristic(uuid).Value];
  }

  /** Unregisters and unexports everything. */
  async stop(): Promise<void> {
    await this.unregister();
    const { bus } = this.options;
    for (const s of this.exported) {
      for (const c of s.characteristics) bus.unexport(c.path, c);
      bus.unexport(s.service.path, s.service);
    }
    bus.unexport(`${this.base}/adv`, this.advertisement);
    bus.unexport(this.base, this.application);
  }

  private exportService(spec: PeripheralServiceSpec, sink: (event: PeripheralEvent) => void): void {
    const servicePath = `${this.base}/service${this.exported.length}`;
    const service = new ServiceObject(spec.uuid, servicePath);
    const characteristics = spec.characteristics.map(
      (c, i) => new CharacteristicObject(c, `${servicePath}/char${i}`, servicePath, sink),
    );
    this.options.bus.export(servicePath, service);
    for (const c of characteristics) this.options.bus.export(c.path, c);
    this.exported.push({ service, characteristics });
  }

  private managedObjects(): Record<string, Record<string, Record<string, Variant>>> {
    const tree: Record<string, Record<string, Record<string, Variant>>> = {};
    for (const { service, characteristics } of this.exported) {
      tree[service.path] = { 'org.bluez.GattService1': service.managedProperties() };
      for (const c of characteristics)
        tree[c.path] = { 'org.bluez.GattCharacteristic1': c.managedProperties() };
    }
    return tree;
  }

  private characteristic(uuid: string): CharacteristicObject {
    for (const s of this.exported) for (const c of s.characteristics) if (c.UUID === uuid) return c;
    throw new RangeError(`uuid ${uuid} is not a characteristic of this peripheral`);
  }

  private async adapterCall(
    iface: string,
    member: string,
    signature: string,
    body: unknown[],
  ): Promise<void> {
    await callWithDeadline(
      this.options.bus,
      { destination: 'org.bluez', path: this.options.adapterPath, interface: iface, member, signature, body },
      this.timeoutMs,
    );
  }
}
