import { DBusError, Variant, interface as dbusInterface } from 'dbus-next';
import type { PeripheralCharacteristicSpec, PeripheralEvent } from './types.js';

const { Interface, ACCESS_READ } = dbusInterface;

/** Receives what bluetoothd asks of the application (reads, writes, notify on/off). */
export type EventSink = (event: PeripheralEvent) => void;

/** org.bluez.GattService1 as a GATT server application exports it. */
export class ServiceObject extends Interface {
  constructor(
    private readonly serviceUuid: string,
    readonly path: string,
  ) {
    super('org.bluez.GattService1');
  }
  get UUID(): string {
    return this.serviceUuid;
  }
  get Primary(): boolean {
    return true;
  }
  managedProperties(): Record<string, Variant> {
    return { UUID: new Variant('s', this.serviceUuid), Primary: new Variant('b', true) };
  }
}
ServiceObject.configureMembers({
  properties: {
    UUID: { signature: 's', access: ACCESS_READ },
    Primary: { signature: 'b', access: ACCESS_READ },
  },
});

/**
 * org.bluez.GattCharacteristic1 of the application. While notifying it sends a counter in the
 * first byte every `notifyIntervalMs`, unless the test paused it (the "zombie" peripheral: the
 * link stays up, the data stops).
 */
export class CharacteristicObject extends Interface {
  private value: Buffer;
  private notifying = false;
  private paused = false;
  private counter = 0;
  private timer: NodeJS.Timeout | undefined;
  private intervalMs: number | undefined;

  constructor(
    private readonly spec: PeripheralCharacteristicSpec,
    readonly path: string,
    private readonly servicePath: string,
    private readonly sink: EventSink,
  ) {
    super('org.bluez.GattCharacteristic1');
    this.value = Buffer.from(spec.value ?? []);
    this.intervalMs = spec.notifyIntervalMs;
  }

  get UUID(): string {
    return this.spec.uuid;
  }
  get Service(): string {
    return this.servicePath;
  }
  get Flags(): string[] {
    return this.spec.flags;
  }
  get Value(): Buffer {
    return this.value;
  }
  get Notifying(): boolean {
    return this.notifying;
  }

  managedProperties(): Record<string, Variant> {
    return {
      UUID: new Variant('s', this.spec.uuid),
      Service: new Variant('o', this.servicePath),
      Flags: new Variant('as', this.spec.flags),
    };
  }

  ReadValue(_options: Record<string, Variant>): Buffer {
    this.sink({ kind: 'read', uuid: this.spec.uuid });
    return this.value;
  }

  WriteValue(value: Buffer, _options: Record<string, Variant>): void {
    this.value = Buffer.from(value);
    this.sink({ kind: 'write', uuid: this.spec.uuid, value: [...value] });
  }

  StartNotify(): void {
    if (!this.spec.flags.includes('notify') && !this.spec.flags.includes('indicate')) {
      throw new DBusError('org.bluez.Error.NotSupported', 'characteristic does not notify');
    }
    this.sink({ kind: 'start-notify', uuid: this.spec.uuid });
    this.notifying = true;
    Interface.emitPropertiesChanged(this, { Notifying: true }, []);
    this.schedule();
  }

  StopNotify(): void {
    this.sink({ kind: 'stop-notify', uuid: this.spec.uuid });
    this.notifying = false;
    this.schedule();
  }

  /** Changes the cadence; undefined stops periodic notifications (notify() still works). */
  setNotifyInterval(ms: number | undefined): void {
    this.intervalMs = ms;
    this.schedule();
  }

  /** Stops (true) or resumes (false) sending while the central still has notifications on. */
  setPaused(paused: boolean): void {
    this.paused = paused;
    this.schedule();
  }

  /** Sends one notification now (if a central subscribed); returns whether it was sent. */
  notify(value?: number[]): boolean {
    if (!this.notifying) return false;
    this.counter = (this.counter + 1) % 256;
    this.value = Buffer.from(value ?? [this.counter]);
    this.sink({ kind: 'notification', uuid: this.spec.uuid, value: [...this.value] });
    Interface.emitPropertiesChanged(this, { Value: this.value }, []);
    return true;
  }

  /** Stops the timer; bluetoothd forgets the subscription when the application goes away. */
  dispose(): void {
    this.notifying = false;
    this.schedule();
  }

  private schedule(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.notifying && !this.paused && this.intervalMs !== undefined) {
      this.timer = setInterval(() => this.notify(), this.intervalMs);
    }
  }
}
CharacteristicObject.configureMembers({
  properties: {
    UUID: { signature: 's', access: ACCESS_READ },
    Service: { signature: 'o', access: ACCESS_READ },
    Flags: { signature: 'as', access: ACCESS_READ },
    Value: { signature: 'ay', access: ACCESS_READ },
    Notifying: { signature: 'b', access: ACCESS_READ },
  },
  methods: {
    ReadValue: { inSignature: 'a{sv}', outSignature: 'ay' },
    WriteValue: { inSignature: 'aya{sv}', outSignature: '' },
    StartNotify: { inSignature: '', outSignature: '' },
    StopNotify: { inSignature: '', outSignature: '' },
  },
});

/**
 * The application root: bluetoothd reads the whole GATT tree with one GetManagedObjects call
 * when the application is registered, so services must be exported before RegisterApplication.
 */
export class ApplicationObject extends Interface {
  constructor(private readonly tree: () => Record<string, Record<string, Record<string, Variant>>>) {
    super('org.freedesktop.DBus.ObjectManager');
  }
  GetManagedObjects(): Record<string, Record<string, Record<string, Variant>>> {
    return this.tree();
  }
}
ApplicationObject.configureMembers({
  methods: { GetManagedObjects: { inSignature: '', outSignature: 'a{oa{sa{sv}}}' } },
  signals: {},
});

/** org.bluez.LEAdvertisement1: a connectable advertisement with the local name and service UUIDs. */
export class AdvertisementObject extends Interface {
  constructor(
    private readonly localName: string,
    private readonly serviceUuids: () => string[],
    private readonly sink: EventSink,
  ) {
    super('org.bluez.LEAdvertisement1');
  }
  get Type(): string {
    return 'peripheral';
  }
  get ServiceUUIDs(): string[] {
    return this.serviceUuids();
  }
  get LocalName(): string {
    return this.localName;
  }
  get Discoverable(): boolean {
    return true;
  }
  Release(): void {
    this.sink({ kind: 'advertisement-released' });
  }
}
AdvertisementObject.configureMembers({
  properties: {
    Type: { signature: 's', access: ACCESS_READ },
    ServiceUUIDs: { signature: 'as', access: ACCESS_READ },
    LocalName: { signature: 's', access: ACCESS_READ },
    Discoverable: { signature: 'b', access: ACCESS_READ },
  },
  methods: { Release: { inSignature: '', outSignature: '' } },
});
