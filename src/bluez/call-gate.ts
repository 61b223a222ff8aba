/**
 * The bound on method calls awaiting a reply on one D-Bus connection, with fair queueing.
 *
 * dbus-daemon refuses a call with org.freedesktop.DBus.Error.LimitsExceeded once the calling
 * connection has `max_replies_per_connection` calls awaiting a reply (dbus's bus/connection.c,
 * bus_connections_expect_reply). The stock system bus allows 128 (the hard-coded default that
 * dbus's bus/system.conf.in lists as `<limit name="max_replies_per_connection">128</limit>`; the
 * session bus raises it to 50000 in bus/session.conf.in). Calls beyond the bound wait here instead.
 *
 * Fairness: waiting calls are grouped by a key (the device's object path, or the adapter's) and the
 * groups are served round-robin, so one device's burst cannot starve the others. `control` calls
 * (the mirror's resync and property reads) go first and may use a reserve that normal calls never
 * take, so a queue full of slow Connects never delays the view every decision is made from.
 */

/** Scheduling class of a call: `control` is served first and may use the reserved slots. */
export type CallPriority = 'control' | 'normal';

/** The default bound: half of the stock system bus's max_replies_per_connection (128). */
export const DEFAULT_MAX_IN_FLIGHT_CALLS = 64;

/** The largest accepted bound (dbus-daemon's session bus default, 50000, is far above any real need). */
export const MAX_IN_FLIGHT_CALLS_LIMIT = 100_000;

/**
 * Validates a `maxInFlightCalls` option: an integer from 1 to {@link MAX_IN_FLIGHT_CALLS_LIMIT}.
 * @throws TypeError when not a number, RangeError when not an integer in range
 */
export function validateMaxInFlightCalls(value: unknown, field = 'maxInFlightCalls'): number {
  if (typeof value !== 'number') throw new TypeError(`${field} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < 1 || value > MAX_IN_FLIGHT_CALLS_LIMIT) {
    throw new RangeError(
      `${field} must be an integer from 1 to ${MAX_IN_FLIGHT_CALLS_LIMIT} (stock system bus: 128 replies per connection), got ${String(value)}`,
    );
  }
  return value;
}

/** One call waiting for a slot. */
interface Waiting {
  readonly key: string;
  readonly priority: CallPriority;
  /** Sends the call; the caller must call {@link CallGate.done} once when it settles. */
  readonly start: () => void;
  /** Set while queued: tells the ticket it was admitted. */
  onAdmit?: () => void;
}

/** Handle of a queued or admitted call. */
export interface GateTicket {
  /** Removes the call from the queue if it is still waiting (it is then never sent). */
  cancel(): void;
  /** True once the call was given a slot. */
  readonly admitted: boolean;
}

/** The fairness key of an object path: the device (`/org/bluez/hci0/dev_…`), else the path itself. */
export function fairnessKey(path: string): string {
  const match = /^\/org\/bluez\/[^/]+\/dev_[0-9A-Fa-f_]+/.exec(path);
  return match ? match[0] : path;
}

/**
 * The slot accounting and the queue. Single-threaded and synchronous: `submit` either starts the
 * call at once or queues it; `done` frees the slot and starts the next waiting call.
 */
export class CallGate {
  private limitValue: number;
  private inFlightValue = 0;
  private readonly control: Waiting[] = [];
  /** Normal calls per key; Map order is the round-robin order (a served key moves to the back). */
  private readonly normal = new Map<string, Waiting[]>();
  private queuedValue = 0;
  /** While set, normal calls wait until in-flight calls drain to this many (after a refusal). */
  private drainTo: number | undefined;

  /** @param limit - the bound (validated by the caller) */
  constructor(limit: number) {
    this.limitValue = limit;
  }

  /** The bound. */
  get limit(): number {
    return this.limitValue;
  }

  /** Lowers the bound (a second user of the connection asked for less); never raises it. */
  lowerLimit(limit: number): void {
    if (limit < this.limitValue) this.limitValue = limit;
  }

  /** Calls sent and not yet settled. */
  get inFlight(): number {
    return this.inFlightValue;
  }

  /** Calls waiting for a slot. */
  get queued(): number {
    return this.queuedValue;
  }

  /** Slots normal calls never take (so control calls pass a queue full of slow Connects). */
  private get reserve(): number {
    return Math.min(8, Math.floor(this.limitValue / 4));
  }

  private canAdmit(priority: CallPriority): boolean {
    if (this.drainTo !== undefined) return false;
    if (priority === 'control') return this.inFlightValue < this.limitValue;
    return this.inFlightValue < this.limitValue - this.reserve;
  }

  /**
   * Starts `start` now when a slot is free and nobody of its class waits, else queues it.
   * `first`: put it at the head of its key's queue (a call refused by the daemon and retried).
   */
  submit(key: string, priority: CallPriority, start: () => void, first = false): GateTicket {
    const entry: Waiting = { key, priority, start };
    let admitted = false;
    const waitingAhead = priority === 'control' ? this.control.length > 0 : this.normal.size > 0;
    if (!waitingAhead && this.canAdmit(priority)) {
      this.inFlightValue += 1;
      admitted = true;
      start();
    } else {
      this.enqueue(entry, first);
      entry.onAdmit = () => {
        admitted = true;
      };
    }
    return {
      cancel: () => {
        if (!admitted) this.remove(entry);
      },
      get admitted() {
        return admitted;
      },
    };
  }

  private enqueue(entry: Waiting, first: boolean): void {
    this.queuedValue += 1;
    if (entry.priority === 'control') {
      if (first) this.control.unshift(entry);
      else this.control.push(entry);
      return;
    }
    const list = this.normal.get(entry.key);
    if (list === undefined) this.normal.set(entry.key, [entry]);
    else if (first) list.unshift(entry);
    else list.push(entry);
  }

  private remove(entry: Waiting): void {
    if (entry.priority === 'control') {
      const i = this.control.indexOf(entry);
      if (i < 0) return;
      this.control.splice(i, 1);
    } else {
      const list = this.normal.get(entry.key);
      const i = list?.indexOf(entry) ?? -1;
      if (list === undefined || i < 0) return;
      list.splice(i, 1);
      if (list.length === 0) this.normal.delete(entry.key);
    }
    this.queuedValue -= 1;
  }

  /** A call that was admitted settled: frees its slot and starts waiting calls. */
  done(): void {
    if (this.inFlightValue > 0) this.inFlightValue -= 1;
    if (this.drainTo !== undefined && this.inFlightValue <= this.drainTo) this.drainTo = undefined;
    this.pump();
  }

  /**
   * The daemon refused a call for its pending-reply limit although the bound let it through
   * (the bus is configured below our bound): admit no call until half of those in flight have
   * been answered.
   */
  refused(): void {
    this.drainTo = Math.floor(this.inFlightValue / 2);
  }

  private pump(): void {
    for (;;) {
      const next = this.takeNext();
      if (next === undefined) return;
      this.inFlightValue += 1;
      next.onAdmit?.();
      next.start();
    }
  }

  private takeNext(): Waiting | undefined {
    if (this.control.length > 0 && this.canAdmit('control')) {
      this.queuedValue -= 1;
      return this.control.shift();
    }
    if (this.normal.size === 0 || !this.canAdmit('normal')) return undefined;
    const round = this.normal.entries().next();
    if (round.done === true) return undefined;
    const [key, list] = round.value;
    const entry = list.shift();
    this.normal.delete(key);
    if (list.length > 0) this.normal.set(key, list); // to the back of the round
    this.queuedValue -= 1;
    return entry;
  }

  /**
   * Empties the queue: the connection closed or was lost, and its owner rejects every call it
   * queued. A new connection gets a new gate, so late `done()` calls of the old one change nothing.
   */
  reset(): void {
    this.control.length = 0;
    this.normal.clear();
    this.queuedValue = 0;
    this.drainTo = undefined;
  }
}
