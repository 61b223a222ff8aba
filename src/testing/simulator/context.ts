/**
 * What every part of one simulated bluetoothd lifetime shares. A restart makes
 * a new context (new bus connection, new timers); the world and the faults are
 * carried over.
 */
import type { FaultBook } from './faults.js';
import type { SimBus } from './sim-bus.js';
import type { FullTiming, Timers } from './timing.js';
import type { World } from './world.js';
import { BluezErrors, BluezTexts } from './bluez-interfaces.js';
import { dbusError } from './sim-bus.js';

/** Behaviour switches for BlueZ versions and main.conf settings. */
export interface BluezBehaviour {
  /**
   * main.conf [GATT] Cache. `'no'` (the simulator's default, as the project's
   * issue specifies): GATT objects are removed when the link goes down.
   * `'always'` (bluetoothd's own default since 5.5x): they stay exported while
   * disconnected and ServicesResolved alone goes false. `'yes'`: kept for
   * paired devices only.
   */
  gattCache: 'no' | 'yes' | 'always';
  /**
   * BlueZ 5.66–5.81 answer a second Connect on a pending LE connect with
   * org.bluez.Error.Failed "Operation already in progress" (device_connect_le
   * returns -EALREADY → strerror). 5.82+ (commit 1c2ec2990) answer
   * org.bluez.Error.InProgress "In Progress". Default false = 5.82+ behaviour.
   */
  legacyPendingConnectError: boolean;
}

/** A recorded GATT write (what the peripheral received). */
export interface GattWrite {
  at: number;
  adapter: string;
  address: string;
  uuid: string;
  value: number[];
  /** request (with response) or command (without). */
  type: 'request' | 'command';
}

export interface DaemonContext {
  bus: SimBus;
  timers: Timers;
  timing: FullTiming;
  world: World;
  faults: FaultBook;
  behaviour: BluezBehaviour;
  now(): number;
  recordWrite(w: GattWrite): void;
}

/** The error a second Connect gets while one is pending (version dependent). */
export function pendingConnectError(ctx: DaemonContext): Error {
  return ctx.behaviour.legacyPendingConnectError
    ? dbusError(BluezErrors.Failed, BluezTexts.busy)
    : dbusError(BluezErrors.InProgress, BluezTexts.inProgress);
}

/** A cancellable chain of waits for one operation (a Connect attempt). */
export class Attempt {
  private cancelled: Error | undefined;
  // Cancelling ends the current sleep and clears its timer (a cancelled Connect with a long
  // connect-latency must not keep a timer running until the latency would have passed).
  private readonly controller = new AbortController();

  cancel(reason: Error): void {
    if (this.cancelled) return;
    this.cancelled = reason;
    this.controller.abort();
  }

  get isCancelled(): boolean {
    return this.cancelled !== undefined;
  }

  /** Waits `ms`; throws the cancel reason if cancelled meanwhile, or a stop error if the daemon stops. */
  async wait(ctx: DaemonContext, ms: number): Promise<void> {
    this.throwIfCancelled();
    const completed = await ctx.timers.sleep(ms, this.controller.signal);
    this.throwIfCancelled();
    if (!completed) throw new DaemonStopped();
  }

  throwIfCancelled(): void {
    if (this.cancelled) throw this.cancelled;
  }
}

/** Thrown inside operations when their bluetoothd lifetime ended; nobody hears the reply. */
export class DaemonStopped extends Error {
  constructor() {
    super('simulated bluetoothd stopped');
    this.name = 'DaemonStopped';
  }
}
