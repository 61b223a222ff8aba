/**
 * Our discovery sessions, one per (BluezClient, adapter), shared by every caller in the process
 * and counted: bluetoothd keeps one session per bus client (src/adapter.c), so a second
 * StartDiscovery on our connection would answer InProgress and the first caller's StopDiscovery
 * would end the scan for everyone else. The first caller takes the scan lock (when configured),
 * sets the filter and starts; the last one to leave stops and releases the lock — on every path,
 * cancellation and failed starts included.
 */
import type { BluezClient } from '../bluez/client-types.js';
import { BluezError, isAbortError } from '../bluez/errors.js';
import { acquireScanLock, type HeldLock } from '../lock/acquire.js';
import type { ResolvedDiscovery } from './options.js';

/** Bound of StopDiscovery / SetDiscoveryFilter on the way out (the disconnect bound, docs/defaults.md). */
const STOP_TIMEOUT_MS = 5000;

interface Session {
  refs: number;
  /** Aborted when the last caller leaves while the start is still under way. */
  readonly controller: AbortController;
  /** Settles when the session is running (ours or shared), or with the start's error. */
  readonly started: Promise<void>;
  /** StartDiscovery succeeded: ours to stop. */
  own: boolean;
  lock: HeldLock | null;
  /** The one teardown (a failed start and the last leave may both ask for it). */
  finishing?: Promise<void>;
}

interface AdapterSessions {
  current: Session | undefined;
  /** The previous session's StopDiscovery: a new start waits for it (same bus connection). */
  stopping: Promise<void>;
}

const byClient = new WeakMap<BluezClient, Map<string, AdapterSessions>>();

function slot(bluez: BluezClient, adapter: string): AdapterSessions {
  let perAdapter = byClient.get(bluez);
  if (perAdapter === undefined) {
    perAdapter = new Map();
    byClient.set(bluez, perAdapter);
  }
  let entry = perAdapter.get(adapter);
  if (entry === undefined) {
    entry = { current: undefined, stopping: Promise.resolve() };
    perAdapter.set(adapter, entry);
  }
  return entry;
}

async function start(
  bluez: BluezClient,
  adapter: string,
  config: ResolvedDiscovery,
  session: Session,
  after: Promise<void>,
): Promise<void> {
  const signal = session.controller.signal;
  await after;
  if (config.scanLock !== undefined) {
    const outcome = await acquireScanLock(config.scanLock, adapter, { signal });
    if (outcome.held === null) {
      config.onEvent?.({ type: 'scan-lock-degraded', adapter, waitedMs: outcome.waitedMs });
    } else if (signal.aborted) {
      outcome.held.release();
      throw signal.reason;
    } else {
      session.lock = outcome.held;
    }
  }
  // LE only, and the caller's service UUIDs: fewer device objects and wake-ups. A filter BlueZ
  // refuses is no reason not to scan.
  await bluez
    .setDiscoveryFilter(
      adapter,
      { transport: 'le', ...(config.uuids.length > 0 ? { uuids: config.uuids } : {}) },
      { signal, timeoutMs: STOP_TIMEOUT_MS },
    )
    .catch((err: unknown) => {
      if (isAbortError(err) || signal.aborted) throw err;
    });
  try {
    await bluez.startDiscovery(adapter, { signal });
    session.own = true;
    config.onEvent?.({ type: 'discovery-started', adapter });
  } catch (err) {
    // Counted as ours when cancelled in flight: the call may have started it in bluetoothd.
    if (isAbortError(err) || signal.aborted) {
      session.own = true;
      throw err;
    }
    // Another client of this bluetoothd runs discovery: shared discovery (docs/bluez-facts.md), its results
    // reach every client through the object tree.
    if (!(err instanceof BluezError && err.errorClass === 'inProgress')) throw err;
    config.onEvent?.({ type: 'discovery-shared', adapter });
  }
}

function finish(bluez: BluezClient, adapter: string, config: ResolvedDiscovery, session: Session) {
  session.finishing ??= teardown(bluez, adapter, config, session);
  return session.finishing;
}

async function teardown(bluez: BluezClient, adapter: string, config: ResolvedDiscovery, session: Session) {
  await session.started.catch(() => {});
  try {
    if (session.own) {
      await bluez.stopDiscovery(adapter, { timeoutMs: STOP_TIMEOUT_MS }).catch(() => {});
      config.onEvent?.({ type: 'discovery-stopped', adapter });
    }
  } finally {
    session.lock?.release();
    session.lock = null;
  }
}

/**
 * Joins (or starts) our discovery session on `adapter`; resolves with a leave function once
 * discovery runs there (ours, or another client's when StartDiscovery answered InProgress).
 * The leave function is safe to call twice; the last leave stops our session (bounded) and
 * releases the scan lock.
 * @throws the start's BluezError (NotReady, …), a lock error, or the signal's reason
 */
export async function joinDiscovery(
  bluez: BluezClient,
  adapter: string,
  config: ResolvedDiscovery,
  signal: AbortSignal,
): Promise<() => Promise<void>> {
  if (signal.aborted) throw signal.reason;
  const entry = slot(bluez, adapter);
  let session = entry.current;
  if (session === undefined) {
    const controller = new AbortController();
    const fresh: Session = {
      refs: 0,
      controller,
      own: false,
      lock: null,
      started: Promise.resolve(),
    };
    (fresh as { started: Promise<void> }).started = start(bluez, adapter, config, fresh, entry.stopping);
    // A failed start ends the session for everybody: the next caller starts anew.
    fresh.started.catch(() => {
      if (entry.current === fresh) entry.current = undefined;
      entry.stopping = finish(bluez, adapter, config, fresh);
    });
    entry.current = fresh;
    session = fresh;
  }
  const joined = session;
  joined.refs += 1;
  let left = false;
  const leave = async (): Promise<void> => {
    if (left) return;
    left = true;
    joined.refs -= 1;
    if (joined.refs > 0 || entry.current !== joined) return;
    entry.current = undefined;
    joined.controller.abort(new DOMException('discovery no longer needed', 'AbortError'));
    entry.stopping = finish(bluez, adapter, config, joined);
    await entry.stopping;
  };
  let onAbort: (() => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      joined.started.then(resolve, reject);
    });
  } catch (err) {
    await leave();
    throw err;
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
  return leave;
}

/** Adapters on which this process has a discovery session open or starting (tests check leaks). */
export function openDiscoverySessions(bluez: BluezClient): string[] {
  const perAdapter = byClient.get(bluez);
  if (perAdapter === undefined) return [];
  return [...perAdapter.entries()].filter(([, e]) => e.current !== undefined).map(([a]) => a);
}
