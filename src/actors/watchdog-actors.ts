/**
 * The I/O behind the watchdog machine (src/machines/watchdog.ts), over src/bluez: activity from the
 * mirror's Value signals (no D-Bus call of its own), and the one bounded probe read.
 */
import { fromCallback, fromPromise } from 'xstate';
import type { BluezClient } from '../bluez/client-types.js';
import { DeviceNotFoundError } from '../bluez/errors.js';
import { devicePath } from '../bluez/validate.js';
import {
  watchdogMachine,
  type ActivityInput,
  type ProbeInput,
  type WatchdogEvent,
} from '../machines/watchdog.js';

/**
 * Calls `onActivity` for every characteristic Value change below the device (a notification or
 * indication, or a read that updated BlueZ's cached value). Returns the unsubscribe function.
 */
export function onDeviceActivity(
  bluez: BluezClient,
  { adapter, address }: ActivityInput,
  onActivity: () => void,
): () => void {
  const path = devicePath(adapter, address);
  return bluez.mirror.onValue(path, (changed) => {
    if (changed !== path) onActivity();
  });
}

/** Reads the probe characteristic once, bounded by its own deadline. */
export async function probeCharacteristic(
  bluez: BluezClient,
  input: ProbeInput,
  signal: AbortSignal,
): Promise<void> {
  const characteristic = bluez
    .gattServices(input.adapter, input.address)
    .flatMap((s) => s.characteristics)
    .find((c) => c.uuid === input.uuid);
  if (characteristic === undefined) {
    throw new DeviceNotFoundError(
      `probe characteristic ${input.uuid} is not exported for ${input.address} on ${input.adapter}`,
      { adapter: input.adapter, device: input.address },
    );
  }
  await bluez.readCharacteristic(characteristic.path, { timeoutMs: input.timeoutMs, signal });
}

/** The watchdog machine with its actors bound to `bluez`. */
export function providedWatchdogMachine(bluez: BluezClient) {
  return watchdogMachine.provide({
    actors: {
      listenForActivity: fromCallback<WatchdogEvent, ActivityInput>(({ input, sendBack }) =>
        onDeviceActivity(bluez, input, () => sendBack({ type: 'ACTIVITY' })),
      ),
      probeCharacteristic: fromPromise<void, ProbeInput>(({ input, signal }) =>
        probeCharacteristic(bluez, input, signal),
      ),
    },
  });
}
