/**
 * Connect admission: at most `perAdapter` Device1.Connect calls pending per adapter, shared by
 * every connection on one BluezClient (the pool's children and any establishConnection on that
 * client), granted first come first served.
 *
 * Why: a controller runs one LE create-connection at a time (Bluetooth Core Vol 4 Part E 7.8.12:
 * a second LE Create Connection while one is pending is refused with Command Disallowed, so
 * bluetoothd queues them), so a hundred Connect calls sent at once do not finish sooner than a
 * few at a time; they only pile up as pending replies on our bus connection, which dbus-daemon
 * limits (max_replies_per_connection, 128 on a stock system bus) and then refuses with
 * org.freedesktop.DBus.Error.LimitsExceeded. The default of 2 keeps the controller busy (the next
 * request is already queued in bluetoothd while one completes) and bounds our pending Connects to
 * 2 per adapter.
 */
import type { BluezClient } from '../bluez/client-types.js';

/** Default pending Connect calls per adapter (see the module comment). */
export const DEFAULT_CONNECTS_PER_ADAPTER = 2;

interface Waiter {
  readonly grant: () => void;
}

/** Validates a per-adapter Connect bound: an integer >= 1, else RangeError/TypeError naming `field`. */
export function validateConnectsPerAdapter(value: unknown, field = 'connectsPerAdapter'): number {
  if (typeof value !== 'number') throw new TypeError(`${field} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < 1 || value > 1000)
    throw new RangeError(`${field} must be an integer from 1 to 1000, got ${String(value)}`);
  return value;
}

/** A FIFO gate per adapter: {@link ConnectAdmission.acquire} resolves with the release function. */
export class ConnectAdmission {
  private limitValue: number;
  private readonly active = new Map<string, number>();
  private readonly queues = new Map<string, Waiter[]>();

  /** @param perAdapter - pending Connect calls allowed per adapter (default {@link DEFAULT_CONNECTS_PER_ADAPTER}) */
  constructor(perAdapter: number = DEFAULT_CONNECTS_PER_ADAPTER) {
    this.limitValue = validateConnectsPerAdapter(perAdapter, 'perAdapter');
  }

  /** Pending Connect calls allowed per adapter. */
  get limit(): number {
    return this.limitValue;
  }

  /** Changes the bound; waiters are admitted at once when it grows. */
  setLimit(perAdapter: number): void {
    this.limitValue = validateConnectsPerAdapter(perAdapter, 'perAdapter');
    for (const adapter of [...this.queues.keys()]) this.drain(adapter);
  }

  /** Admitted (pending) Connects on `adapter`. */
  admitted(adapter: string): number {
    return this.active.get(adapter) ?? 0;
  }

  /** Connects waiting for admission on `adapter`. */
  waiting(adapter: string): number {
    return this.queues.get(adapter)?.length ?? 0;
  }

  /** Admitted plus waiting over every adapter (tests check it returns to 0). */
  get size(): number {
    let n = 0;
    for (const v of this.active.values()) n += v;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /**
   * Waits for a turn on `adapter` (FIFO). Resolves with the release function (idempotent; call it
   * on every path once the Connect call settled). Rejects with `signal.reason` when aborted
   * before the turn came; the place in the queue is then given up.
   */
  acquire(adapter: string, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const n = (this.active.get(adapter) ?? 1) - 1;
      if (n <= 0) this.active.delete(adapter);
      else this.active.set(adapter, n);
      this.drain(adapter);
    };
    if (this.admitted(adapter) < this.limitValue && this.waiting(adapter) === 0) {
      this.active.set(adapter, this.admitted(adapter) + 1);
      return Promise.resolve(release);
    }
    return new Promise<() => void>((resolve, reject) => {
      const waiter: Waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      const onAbort = (): void => {
        const queue = this.queues.get(adapter);
        const at = queue?.indexOf(waiter) ?? -1;
        if (queue !== undefined && at !== -1) {
          queue.splice(at, 1);
          if (queue.length === 0) this.queues.delete(adapter);
        }
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const queue = this.queues.get(adapter);
      if (queue === undefined) this.queues.set(adapter, [waiter]);
      else queue.push(waiter);
    });
  }

  private drain(adapter: string): void {
    const queue = this.queues.get(adapter);
    while (queue !== undefined && queue.length > 0 && this.admitted(adapter) < this.limitValue) {
      const next = queue.shift();
      if (queue.length === 0) this.queues.delete(adapter);
      this.active.set(adapter, this.admitted(adapter) + 1);
      next?.grant();
    }
  }
}

const gates = new WeakMap<BluezClient, ConnectAdmission>();

/**
 * The admission gate of `bluez`, shared by everything connecting through that client (created
 * with the default bound on first use). `perAdapter`, when given, sets its bound.
 */
export function connectAdmission(bluez: BluezClient, perAdapter?: number): ConnectAdmission {
  let gate = gates.get(bluez);
  if (gate === undefined) {
    gate = new ConnectAdmission(perAdapter);
    gates.set(bluez, gate);
  } else if (perAdapter !== undefined) {
    gate.setLimit(perAdapter);
  }
  return gate;
}
