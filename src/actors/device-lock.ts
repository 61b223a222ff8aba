/**
 * Per-device in-process mutex (async-mutex), keyed by the upper-case address. Two callers in one
 * process that connect the same device would otherwise race each other into
 * org.bluez.Error.InProgress (e.g. a watchdog reconnect racing a scheduled one); with the mutex
 * the second waits, then finds the first one's link up and adopts it.
 *
 * This is the in-process half of the `locking` state (docs/architecture.md); the cross-process
 * adapter slot (flock) is a later issue's and will be taken in the same `acquireDeviceLock` actor.
 */
import { Mutex } from 'async-mutex';

interface Entry {
  readonly mutex: Mutex;
  /** Holders plus waiters; the entry is dropped at 0 so the map does not grow with every address. */
  users: number;
}

const entries = new Map<string, Entry>();

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('aborted', 'AbortError');
}

/**
 * Waits for the device's mutex; resolves with a release function (safe to call twice).
 * Cancelling through `signal` withdraws the wait: if the mutex is granted later it is released at once.
 */
export async function lockDevice(address: string, signal?: AbortSignal): Promise<() => void> {
  const key = address.toUpperCase();
  if (signal?.aborted) throw abortReason(signal);
  let entry = entries.get(key);
  if (entry === undefined) {
    entry = { mutex: new Mutex(), users: 0 };
    entries.set(key, entry);
  }
  const held = entry;
  held.users += 1;
  const leave = (): void => {
    held.users -= 1;
    if (held.users === 0 && entries.get(key) === held) entries.delete(key);
  };
  const granted = held.mutex.acquire();
  let onAbort: (() => void) | undefined;
  try {
    const release = await new Promise<() => void>((resolve, reject) => {
      granted.then(resolve, reject);
      if (signal) {
        onAbort = () => reject(abortReason(signal));
        signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
      leave();
    };
  } catch (err) {
    // Withdrawn: whenever the mutex reaches us, hand it straight on.
    void granted.then((release) => {
      release();
      leave();
    });
    throw err;
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

/** Addresses whose mutex is held or awaited right now (tests check nothing is left behind). */
export function busyDeviceLocks(): string[] {
  return [...entries.keys()];
}
