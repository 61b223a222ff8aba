/**
 * Which adapter should make the first attempt for a device. Trying an adapter that cannot hear the
 * device costs a whole attempt (its rediscovery runs until the attempt deadline, 20 s by default)
 * before the rotation reaches the adapter that can.
 */
import type { BluezClient } from '../bluez/client-types.js';
import { BluezError, isAbortError } from '../bluez/errors.js';
import { findDevice } from '../discovery/find-device.js';
import type { ResolvedDiscovery } from '../discovery/options.js';

/**
 * `adapters` reordered so that those on which BlueZ knows `address` come first, the strongest
 * recent sighting (RSSI, which BlueZ only holds while it hears the device) first; the others keep
 * their order. Reads the mirror only.
 */
export function adaptersByKnowledge(
  bluez: BluezClient,
  adapters: readonly string[],
  address: string,
): string[] {
  const score = (name: string): number => {
    const device = bluez.device(name, address);
    if (device === undefined) return -Infinity;
    return device.rssi ?? -1000;
  };
  return adapters
    .map((name, index) => ({ name, index, score: score(name) }))
    .sort((a, b) => (b.score === a.score ? a.index - b.index : b.score > a.score ? 1 : -1))
    .map((a) => a.name);
}

/**
 * The adapter to try first for `address`: one that heard it recently (cache first, strongest RSSI
 * first), else the first of `adapters` on which managed discovery (src/discovery: scan lock,
 * shared sessions, or listening only) hears it within `timeoutMs`, else one that knows it from the
 * past, else undefined. Our sessions are stopped (bounded) on every path, cancellation included.
 * @param more - adapters that may join while the search runs (re-read on every mirror change, e.g.
 *   adapters powering up after a bluetoothd restart); discovery starts on each as it appears
 * @throws the signal's reason when cancelled
 */
export async function locateDevice(
  bluez: BluezClient,
  adapters: readonly string[],
  address: string,
  timeoutMs: number,
  signal: AbortSignal,
  discovery?: ResolvedDiscovery,
  more?: () => readonly string[],
): Promise<string | undefined> {
  try {
    return await findDevice(bluez, adapters, address, {
      timeoutMs,
      signal,
      discovery,
      ...(more === undefined ? {} : { more }),
    });
  } catch (err) {
    if (isAbortError(err) || signal.aborted) throw err;
    // No adapter could look (powered off, a lock error): the attempts will report why.
    if (err instanceof BluezError) return undefined;
    throw err;
  }
}
