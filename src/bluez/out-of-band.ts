/**
 * A BlueZ door for the stall guard's worker thread: its own D-Bus connection (a worker has its own
 * module instances, so `acquireBus` there opens a connection separate from the main thread's), and
 * the one call it needs: Device1.Disconnect, which also cancels a pending Connect (bluez
 * src/device.c: a Disconnect while connecting aborts the connect request). Bounded like every call.
 */
import { acquireBus, type SharedBus } from './bus.js';
import { IFACE } from './variant.js';
import { devicePath, validateTimeoutMs } from './validate.js';

/** The worker's connection to BlueZ. */
export interface OutOfBandBluez {
  /** Our unique name on the bus once connected (for logs and tests). */
  readonly uniqueName: string | undefined;
  /** Waits (bounded) until the connection is up. */
  ready(timeoutMs: number): Promise<void>;
  /** Device1.Disconnect of `address` on `adapter`, bounded by `timeoutMs`. */
  disconnect(adapter: string, address: string, timeoutMs: number): Promise<void>;
  /** Closes the connection. Idempotent. */
  close(): Promise<void>;
}

/** Opens a connection of this thread to `busAddress` for out-of-band calls. */
export function openOutOfBandBluez(busAddress: string): OutOfBandBluez {
  let bus: SharedBus | undefined = acquireBus(busAddress);
  return {
    get uniqueName() {
      return bus?.uniqueName ?? undefined;
    },
    async ready(timeoutMs) {
      await bus?.ready({ timeoutMs: validateTimeoutMs(timeoutMs, 'timeoutMs') });
    },
    async disconnect(adapter, address, timeoutMs) {
      if (bus === undefined) throw new Error('the out-of-band BlueZ connection is closed');
      await bus.call(
        {
          destination: 'org.bluez',
          path: devicePath(adapter, address),
          interface: IFACE.device,
          member: 'Disconnect',
        },
        { timeoutMs: validateTimeoutMs(timeoutMs, 'timeoutMs'), adapter, device: address },
      );
    },
    async close() {
      const b = bus;
      bus = undefined;
      await b?.release();
    },
  };
}
