/**
 * Managed discovery, the one place where the library looks for a device: connect's
 * rediscovery, the first-adapter search, the pool's children and `bluez-cm connect` all come here.
 *
 * - Cache first: a device BlueZ heard recently on an adapter is used without a scan (the phantom
 *   check happens before, in the connection actor's `clearing-stale`).
 * - Otherwise our shared session on each adapter (src/discovery/sessions.ts): scan lock, LE filter,
 *   StartDiscovery; InProgress means another client already scans (shared discovery).
 * - `mode: 'listen'`: no StartDiscovery at all; the device is awaited from the signals another
 *   process's discovery produces (InterfacesAdded, PropertiesChanged of RSSI).
 * Sessions are left on every path (found, timeout, error, cancellation).
 */
import type { BluezClient } from '../bluez/client-types.js';
import { isAbortError } from '../bluez/errors.js';
import type { DeviceSnapshot } from '../bluez/types.js';
import {
  DEFAULT_DISCOVERY,
  resolveDiscoveryOptions,
  type DiscoveryOptions,
  type ResolvedDiscovery,
} from './options.js';
import { joinDiscovery } from './sessions.js';

/**
 * BlueZ heard `device` recently: it is connected, or carries an RSSI (bluetoothd drops RSSI when
 * discovery ends), or it is a temporary device (neither paired nor trusted), which bluetoothd
 * removes TemporaryTimeout (30 s by default, main.conf) after it was last seen. A paired device
 * stays in the tree for ever and says nothing about being in range (docs/defaults.md, cache-first freshness).
 */
export function seenRecently(device: DeviceSnapshot | undefined): boolean {
  if (device === undefined) return false;
  if (device.connected || device.rssi !== undefined) return true;
  return !device.paired && !device.trusted;
}

/** Options of {@link findDevice}. */
export interface FindDeviceOptions {
  /** How long to look when the cache does not answer. */
  readonly timeoutMs: number;
  /** Ends the search (and our sessions) at once. */
  readonly signal: AbortSignal;
  /** Managed discovery settings (default: on-demand scan without lock). */
  readonly discovery?: ResolvedDiscovery;
  /**
   * Adapters that may join while the search runs, re-read on every mirror change (adapters that
   * power up after a bluetoothd restart): the search covers each as it appears. A late adapter
   * that cannot start discovery only means it cannot look (yet); the others still can.
   */
  readonly more?: () => readonly string[];
}

function best(bluez: BluezClient, adapters: readonly string[], address: string): string | undefined {
  let chosen: string | undefined;
  let score = -Infinity;
  for (const a of adapters) {
    const d = bluez.device(a, address);
    if (!seenRecently(d)) continue;
    const s = d?.rssi ?? -1000;
    if (chosen === undefined || s > score) {
      chosen = a;
      score = s;
    }
  }
  return chosen;
}

/**
 * The adapter among `adapters` on which `address` can be reached: cache first, then managed
 * discovery on all of them at once until one hears it or `timeoutMs` passes. A device that is only
 * known from the past (paired, not heard) is returned after the search when nothing better came
 * up: bluetoothd can still try a direct connect to it. Undefined when no adapter knows it.
 * @throws the signal's reason when cancelled; the start error when discovery could start on none
 *   of the adapters (NotReady, a lock error)
 */
export async function findDevice(
  bluez: BluezClient,
  adapters: readonly string[],
  address: string,
  options: FindDeviceOptions,
): Promise<string | undefined> {
  const { signal } = options;
  if (signal.aborted) throw signal.reason;
  const config = options.discovery ?? DEFAULT_DISCOVERY;
  const looking = [...adapters];
  const cached = best(bluez, looking, address);
  if (cached !== undefined) return cached;

  const sessions = new AbortController();
  const stopSessions = (): void => sessions.abort(signal.reason);
  signal.addEventListener('abort', stopSessions, { once: true });
  let failAll: ((err: unknown) => void) | undefined;
  const allFailed = new Promise<never>((_, reject) => (failAll = reject));
  allFailed.catch(() => {});
  const errors: unknown[] = [];
  const joins: Array<Promise<(() => Promise<void>) | undefined>> =
    config.mode === 'listen'
      ? []
      : adapters.map((adapter) =>
          joinDiscovery(bluez, adapter, config, sessions.signal).catch((err: unknown) => {
            if (!isAbortError(err) && !sessions.signal.aborted) {
              errors.push(err);
              if (errors.length === adapters.length && options.more === undefined) failAll?.(errors[0]);
            }
            return undefined;
          }),
        );
  const joinLate = (): void => {
    for (const adapter of options.more?.() ?? []) {
      if (looking.includes(adapter)) continue;
      looking.push(adapter);
      if (config.mode !== 'listen') {
        joins.push(joinDiscovery(bluez, adapter, config, sessions.signal).catch(() => undefined));
      }
    }
  };
  try {
    const found = await Promise.race([
      bluez.mirror.waitFor(
        () => {
          joinLate();
          return best(bluez, looking, address);
        },
        {
          timeoutMs: options.timeoutMs,
          // The search's own signal (aborted with the caller's, and in `finally`): when discovery
          // fails on every adapter the race below ends, and the wait must end with it rather than
          // hold its timer and mirror listeners until timeoutMs.
          signal: sessions.signal,
          description: `${address} heard on ${looking.join(', ')}`,
          errorClass: 'notFound',
        },
      ),
      allFailed,
    ]).catch((err: unknown) => {
      if (isAbortError(err) || signal.aborted || errors.includes(err)) throw err;
      return undefined;
    });
    return found ?? looking.find((a) => bluez.device(a, address) !== undefined);
  } finally {
    signal.removeEventListener('abort', stopSessions);
    sessions.abort(new DOMException('search over', 'AbortError'));
    const leaves = await Promise.all(joins);
    await Promise.all(leaves.map((leave) => (leave === undefined ? Promise.resolve() : leave())));
  }
}

/** A running discovery owner. */
export interface DiscoveryOwner {
  /** Adapters on which it keeps discovery running. */
  readonly adapters: readonly string[];
  /** Stops our sessions (bounded) and releases the scan locks. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Makes this process the host's discovery owner: a discovery session of ours runs on each adapter
 * (under the scan lock when configured) until `stop()`. Every other process sets
 * `discovery: { mode: 'listen' }` and never calls StartDiscovery; BlueZ's object tree and its
 * signals carry the owner's results to all of them.
 * @throws TypeError/RangeError for bad options; the start error of an adapter (the others are stopped)
 */
export async function startDiscoveryOwner(
  bluez: BluezClient,
  options: DiscoveryOptions & { adapters?: readonly string[]; signal?: AbortSignal } = {},
): Promise<DiscoveryOwner> {
  const { adapters: wanted, signal, ...rest } = options;
  const config = resolveDiscoveryOptions({ ...rest, mode: 'scan' }, 'options');
  const adapters = [...(wanted ?? bluez.adapters().map((a) => a.name))];
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const settled = await Promise.allSettled(
    adapters.map((a) => joinDiscovery(bluez, a, config, controller.signal)),
  );
  signal?.removeEventListener('abort', onAbort);
  const leaves = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failure = settled.find((s) => s.status === 'rejected');
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= Promise.all(leaves.map((leave) => leave())).then(() => undefined);
    return stopping;
  };
  if (failure !== undefined) {
    await stop();
    throw failure.reason;
  }
  return { adapters, stop };
}
