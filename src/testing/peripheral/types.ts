/**
 * Shapes of the host-side peripheral: a GATT application plus an LE advertisement that a
 * process exports on a bus where a real bluetoothd runs, so that another adapter of the same
 * bluetoothd (or another machine) sees a real BLE peripheral whose behaviour a test controls.
 */

/** One characteristic the peripheral serves. */
export interface PeripheralCharacteristicSpec {
  /** 128-bit UUID, lower case. */
  uuid: string;
  /** BlueZ flag strings: read, write, write-without-response, notify, indicate. */
  flags: string[];
  /** Initial value (bytes). Default: empty. */
  value?: number[];
  /**
   * While a central has notifications on, send one this often; the first byte of each is a
   * counter (1, 2, 3, …) so a test can see gaps and order. Undefined: only `notify()` sends.
   */
  notifyIntervalMs?: number;
}

/** One primary service the peripheral serves. */
export interface PeripheralServiceSpec {
  uuid: string;
  characteristics: PeripheralCharacteristicSpec[];
}

/** Something a central did to the peripheral, in the order bluetoothd called us. */
export type PeripheralEvent =
  | { kind: 'read'; uuid: string }
  | { kind: 'write'; uuid: string; value: number[] }
  | { kind: 'start-notify'; uuid: string }
  | { kind: 'stop-notify'; uuid: string }
  | { kind: 'notification'; uuid: string; value: number[] }
  | { kind: 'advertisement-released' };
