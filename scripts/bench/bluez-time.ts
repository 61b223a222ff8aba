/**
 * "BlueZ time" of a simulated run: how long the simulated bluetoothd itself took to give the
 * answers the client waited for, computed from the simulator's call log and its latency table.
 *
 * Each call the simulator answered contributes the interval from its arrival (`at`) to its answer
 * (`repliedAt`): for Connect that is the connect latency (plus an RF abort's link-up time, or a
 * refusal), for RemoveDevice of a connected device bluetoothd's disconnect delay, for a stale
 * pending connect's Disconnect nothing. Two answers come after the reply, by signal, and are
 * added to the interval of the call that started them:
 * - a successful Device1.Connect: the GATT objects and ServicesResolved come `resolveServicesMs`
 *   after the reply (plus a late-GATT fault's delay, when the run has one);
 * - Adapter1.StartDiscovery: the device is first reported at the first scan tick, half an
 *   advertising interval after discovery starts.
 * A call the simulator never answered contributes nothing, and neither does one answered only after
 * the client had given up on it (it sent its next Device1/Adapter1 call on that adapter first: the
 * Disconnect of a phantom link, answered when a later RemoveDevice drops the link): the time spent
 * waiting for it is the client's choice, not BlueZ's answer. Overlapping intervals count once.
 */
import type { SimCall, SimTiming } from '../../src/testing/index.js';

export interface BluezTimeExtras {
  /** A late-GATT fault's delay: services appear this long after ServicesResolved. */
  readonly lateGattMs?: number;
}

/** The measure (ms) of the union of the simulator's answer intervals among `calls`. */
export function bluezTimeMs(
  calls: readonly SimCall[],
  timing: Required<SimTiming>,
  extras: BluezTimeExtras = {},
): number {
  const intervals: [number, number][] = [];
  const isControl = (c: SimCall) =>
    c.interface === 'org.bluez.Device1' || c.interface === 'org.bluez.Adapter1';
  const adapterOf = (c: SimCall) => /^\/org\/bluez\/hci[0-9]+/.exec(c.path)?.[0];
  for (const call of calls) {
    const repliedAt = call.repliedAt;
    if (repliedAt === undefined) continue;
    const abandoned =
      isControl(call) &&
      calls.some(
        (next) =>
          next !== call &&
          isControl(next) &&
          next.sender === call.sender &&
          adapterOf(next) === adapterOf(call) &&
          next.at > call.at &&
          next.at < repliedAt,
      );
    if (abandoned) continue;
    let end = repliedAt;
    if (call.error === undefined && call.interface === 'org.bluez.Device1' && call.member === 'Connect') {
      end += timing.resolveServicesMs + (extras.lateGattMs ?? 0);
    }
    if (
      call.error === undefined &&
      call.interface === 'org.bluez.Adapter1' &&
      call.member === 'StartDiscovery'
    ) {
      end += Math.max(1, timing.advertisingIntervalMs / 2);
    }
    intervals.push([call.at, end]);
  }
  intervals.sort((a, b) => a[0] - b[0]);
  let total = 0;
  let current: [number, number] | undefined;
  for (const [start, end] of intervals) {
    if (current === undefined || start > current[1]) {
      if (current !== undefined) total += current[1] - current[0];
      current = [start, end];
    } else {
      current[1] = Math.max(current[1], end);
    }
  }
  if (current !== undefined) total += current[1] - current[0];
  return total;
}

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? NaN)
    : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}
