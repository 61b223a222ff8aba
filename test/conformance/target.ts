/**
 * What a conformance scenario needs from the BlueZ it runs against. Two implementations: the
 * real one (qemu guest with bluetoothd 5.66 + btvirt, host peripheral, control channel) and the
 * simulator. Scenarios talk D-Bus to `busAddress` themselves; the target only does what a
 * D-Bus client cannot: reset the world and cause faults.
 */
export interface ConformanceTarget {
  /** 'bluez-5.66' or 'simulator': names the run in reports. */
  readonly name: string;
  /** Where org.bluez lives (TCP for the guest, unix for the simulator's private bus). */
  readonly busAddress: string;
  /** Scales scenario waits: the simulator runs faster than real time. 1 = real BlueZ. */
  readonly timeScale: number;
  /** BlueZ's TemporaryTimeout as configured for this target, ms. */
  readonly temporaryTimeoutMs: number;
  /**
   * Back to the post-boot state: bluetoothd fresh with an empty device cache, hci0 and hci1
   * powered, the peripheral advertising its default services, nothing connected.
   */
  reset(): Promise<void>;
  /** Powers an adapter off underneath bluetoothd (like rfkill or another process). */
  powerOff(adapter: 'hci0' | 'hci1'): Promise<void>;
  /** The peripheral vanishes (its radio goes off); it stays gone until reset(). */
  linkLoss(): Promise<void>;
  /** The peripheral stops advertising (it stays connectable for links already up). */
  stopAdvertising(): Promise<void>;
  /** The peripheral advertises again after stopAdvertising(). */
  startAdvertising(): Promise<void>;
  /**
   * The zombie peripheral: it stops sending notifications while the link and the subscription
   * stay up (a hung sensor / BMS firmware).
   */
  silenceNotifications(): Promise<void>;
  /** The peripheral adds a service while running (Service Changed for a connected central). */
  addLateService(): Promise<void>;
  /** bluetoothd is stopped and started again (fresh object tree, empty cache is NOT implied). */
  restartBluetoothd(): Promise<void>;
  /** What the peripheral side holds in the read/write characteristic now. */
  peripheralRwValue(): Promise<number[]>;
  /** Releases everything (bus connections, VM or simulator). */
  close(): Promise<void>;
}
