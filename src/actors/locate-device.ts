/**
 * Which adapter should make the first attempt for a device. Trying an adapter that cannot hear the
 * device costs a whole attempt (its rediscovery runs until the attempt deadline, 20 s by default)
 * before the rotation reaches the adapter that can (original defect B17, user-pain §2).
 */
import type { BluezClient } from '../bluez/client-types.js';
import { BluezError, isAbortError } from '../bluez/errors.js';

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
 * The adapter to try first for `address`: one that knows it (see {@link adaptersByKnowledge}), else
 * the first of `adapters` whose discovery sees it within `timeoutMs`, else undefined. Another
 * client's discovery session is shared discovery (SPEC §7), so InProgress is no failure. Our
 * sessions are stopped (bounded) on every path, cancellation included.
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
  more?: () => readonly string[],
): Promise<string | undefined> {
  const looking = [...adapters];
  const seen = (): string | undefined => looking.find((a) => bluez.device(a, address) !== undefined);
  const known = seen();
  if (known !== undefined) return adaptersByKnowledge(bluez, adapters, address)[0];
  const started: string[] = [];
  const lateStarts: Array<Promise<unknown>> = [];
  try {
    // allSettled: every session that did start is known before a failure leaves for `finally`.
    const starts = await Promise.allSettled(
      looking.map(async (adapter) => {
        // Counted before the reply: a call cancelled after it left may still have started the
        // session in bluetoothd, and only a StopDiscovery of ours ends it.
        started.push(adapter);
        try {
          await bluez.startDiscovery(adapter, { signal, timeoutMs });
        } catch (err) {
          if (err instanceof BluezError && !isAbortError(err)) started.splice(started.indexOf(adapter), 1);
          throw err;
        }
      }),
    );
    for (const start of starts) {
      if (start.status === 'fulfilled') continue;
      const err: unknown = start.reason;
      if (isAbortError(err) || signal.aborted) throw err;
      // InProgress: shared discovery. Anything else BlueZ says (powered off, gone): that adapter
      // cannot look, the others still can.
      if (!(err instanceof BluezError)) throw err;
    }
    const joinLate = (): void => {
      for (const adapter of more?.() ?? []) {
        if (looking.includes(adapter)) continue;
        looking.push(adapter);
        started.push(adapter);
        // A failed late start only means that adapter cannot look (yet); the others still can.
        lateStarts.push(bluez.startDiscovery(adapter, { signal, timeoutMs }).catch(() => undefined));
      }
    };
    return await bluez.mirror
      .waitFor(
        () => {
          joinLate();
          return seen();
        },
        { timeoutMs, signal, description: `${address} seen on ${looking.join(', ')}` },
      )
      .catch((err: unknown) => {
        if (isAbortError(err) || signal.aborted) throw err;
        return undefined;
      });
  } finally {
    // Even when cancelled: a session left running keeps the adapter scanning (original 13774d1).
    await Promise.allSettled(lateStarts);
    await Promise.all(started.map((a) => bluez.stopDiscovery(a, { timeoutMs: 5000 }).catch(() => {})));
  }
}
