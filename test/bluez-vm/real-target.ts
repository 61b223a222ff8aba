import type { MessageBus } from 'dbus-next';
import { HostPeripheral } from '../../src/testing/peripheral/index.js';
import { callOutcome, openBus } from '../conformance/bus.js';
import {
  LATE_CHAR_UUID,
  LATE_SERVICE_UUID,
  NOTIFY_CHAR_UUID,
  PERIPHERAL_NAME,
  PERIPHERAL_SERVICES,
  RW_CHAR_UUID,
} from '../conformance/peripheral-spec.js';
import type { ConformanceTarget } from '../conformance/target.js';
import { bootVm, buildGuest } from './vm.js';
import type { BluezVm } from './vm.js';

/** Real bluetoothd 5.66 in the qemu guest; the peripheral is a HostPeripheral on hci1. */
export class RealBluezTarget implements ConformanceTarget {
  readonly name = 'bluez-5.66';
  readonly timeScale = 1;
  /** bluetoothd's default TemporaryTimeout (main.conf), unchanged in the guest. */
  readonly temporaryTimeoutMs = 30_000;
  private peripheral: HostPeripheral | undefined;
  private radio: NodeJS.Timeout | undefined;
  private radioBusy = false;
  private radioPaused = false;

  private constructor(
    private readonly vm: BluezVm,
    private readonly peripheralBus: MessageBus,
  ) {}

  get busAddress(): string {
    return this.vm.dbusAddress;
  }

  /** Builds the guest if the cache lacks it, boots it once, connects the peripheral's bus. */
  static async create(): Promise<RealBluezTarget> {
    await buildGuest(8 * 60_000);
    const vm = await bootVm(180_000);
    try {
      return new RealBluezTarget(vm, openBus(vm.dbusAddress));
    } catch (err) {
      await vm.stop();
      throw err;
    }
  }

  /**
   * btvirt's controller sends an advertising report once, the instant a scan starts, and the
   * kernel drops it when that is before it has entered its discovery state (seen in btmon: the
   * report precedes MGMT "Discovering"); with duplicate filtering on, no second report comes
   * until bluetoothd restarts the scan ≈10 s later. Real peripherals advertise continuously, so
   * while hci0 discovers, the peripheral re-advertises every second.
   */
  private startRadio(): void {
    this.radio = setInterval(() => {
      if (this.radioBusy || this.radioPaused || !this.peripheral?.state.advertising) return;
      this.radioBusy = true;
      const peripheral = this.peripheral;
      callOutcome(
        this.peripheralBus,
        '/org/bluez/hci0',
        'org.freedesktop.DBus.Properties',
        'Get',
        'ss',
        ['org.bluez.Adapter1', 'Discovering'],
        5_000,
      )
        .then((r) => (r.ok && r.body[0] === true ? peripheral.readvertise() : undefined))
        .catch(() => {})
        .finally(() => {
          this.radioBusy = false;
        });
    }, 1_000);
  }

  async reset(): Promise<void> {
    if (!this.radio) this.startRadio();
    this.radioPaused = true;
    while (this.radioBusy) await new Promise((r) => setTimeout(r, 50));
    try {
      await this.replacePeripheral();
    } finally {
      this.radioPaused = false;
    }
  }

  private async replacePeripheral(): Promise<void> {
    if (this.peripheral) {
      // bluetoothd is about to be replaced: dropping the registrations locally is enough.
      this.peripheral.forgetRegistrations();
      await this.peripheral.stop();
      this.peripheral = undefined;
    }
    await this.vm.control.command('reset');
    this.peripheral = await HostPeripheral.start({
      bus: this.peripheralBus,
      adapterPath: '/org/bluez/hci1',
      localName: PERIPHERAL_NAME,
      services: PERIPHERAL_SERVICES,
    });
  }

  async powerOff(adapter: 'hci0' | 'hci1'): Promise<void> {
    await this.vm.control.command(`power ${adapter} off`);
  }

  async linkLoss(): Promise<void> {
    await this.vm.control.command('power hci1 off');
  }

  /** Powers an adapter on again underneath bluetoothd (after {@link powerOff} or {@link linkLoss}). */
  async powerOn(adapter: 'hci0' | 'hci1'): Promise<void> {
    await this.vm.control.command(`power ${adapter} on`);
  }

  /**
   * The peripheral is back after {@link linkLoss}: hci1 powered again and the advertisement
   * registered afresh (whatever bluetoothd kept of it across the power cycle).
   * Resolves when the advertisement is registered again.
   */
  async peripheralBack(): Promise<void> {
    await this.powerOn('hci1');
    const peripheral = this.requirePeripheral();
    await peripheral.stopAdvertising();
    await peripheral.startAdvertising();
  }

  /**
   * bluetoothd forgot the peripheral's GATT application and advertisement when it restarted:
   * registers both again on the new bluetoothd. Resolves when it advertises again.
   */
  async reRegisterPeripheral(): Promise<void> {
    const peripheral = this.requirePeripheral();
    peripheral.forgetRegistrations();
    await peripheral.register({ advertise: true });
  }

  /** Runs a diagnostic shell command in the guest (e.g. `btmgmt -i hci0 con`); its output lines. */
  async guestCommand(command: string): Promise<string[]> {
    return this.vm.control.command(`run ${command}`);
  }

  async stopAdvertising(): Promise<void> {
    await this.requirePeripheral().stopAdvertising();
  }

  async startAdvertising(): Promise<void> {
    await this.requirePeripheral().startAdvertising();
  }

  async silenceNotifications(): Promise<void> {
    this.requirePeripheral().stopNotifying(NOTIFY_CHAR_UUID);
  }

  async addLateService(): Promise<void> {
    await this.requirePeripheral().addService({
      uuid: LATE_SERVICE_UUID,
      characteristics: [{ uuid: LATE_CHAR_UUID, flags: ['read'], value: [7] }],
    });
  }

  async restartBluetoothd(): Promise<void> {
    await this.vm.control.command('restart-bluetoothd');
  }

  async peripheralRwValue(): Promise<number[]> {
    return this.requirePeripheral().value(RW_CHAR_UUID);
  }

  /** The last lines of bluetoothd's log and the controller state, for failure reports. */
  async diagnostics(): Promise<string> {
    const log = await this.vm.control.command('log 80').catch((e: unknown) => [String(e)]);
    const status = await this.vm.control.command('status').catch((e: unknown) => [String(e)]);
    return `--- guest status ---\n${status.join('\n')}\n--- bluetoothd log ---\n${log.join('\n')}`;
  }

  async close(): Promise<void> {
    clearInterval(this.radio);
    this.peripheralBus.disconnect();
    await this.vm.stop();
  }

  private requirePeripheral(): HostPeripheral {
    if (!this.peripheral) throw new Error('peripheral not started (reset() first)');
    return this.peripheral;
  }
}
