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
  /**
   * The answer to Device1.Connect of an LE device on an unpowered adapter.
   *
   * `'not-ready'` (the simulator's default, as the project's issue specifies):
   * org.bluez.Error.NotReady "Resource Not Ready". bluetoothd gives NotReady on the BR/EDR path
   * only (src/device.c connect_profiles, "br-connection-adapter-not-powered").
   *
   * `'io-error'`: org.bluez.Error.Failed "Input/output error", what bluetoothd 5.66 answers
   * (observed in the conformance run; src/device.c dev_connect → device_connect_le:
   * bt_io_connect fails → -EIO → btd_error_failed(strerror(EIO)); the LE path has no powered
   * check up to BlueZ master of 2025). bluetoothd also clears the device's temporary flag first
   * (btd_device_set_temporary(dev, false)), so the device no longer expires.
   */
  unpoweredConnectError: 'not-ready' | 'io-error';
  /**
   * Which temporary (discovered, never connected or paired) devices a power-off removes.
   *
   * `'remove'` (the simulator's default): every temporary device on the adapter goes.
   *
   * `'keep-connectable'`: as bluetoothd 5.66 src/adapter.c. A power-off underneath bluetoothd
   * (mgmt, rfkill, another process: the `power-off` fault) runs adapter_stop →
   * discovery_cleanup(adapter, 0), which removes only temporary devices that are not
   * connectable; every simulated peripheral advertises connectable, so they stay exported.
   * Adapter1.Powered=false set over D-Bus removes every temporary device first
   * (property_set_mode → remove_temporary_devices) in both modes.
   */
  temporaryDevicesOnPowerOff: 'remove' | 'keep-connectable';
}

/** Named sets of {@link BluezBehaviour} answers, one per BlueZ release the project has checked. */
export type BluezBehaviourPreset = 'bluez-5.66';

/**
 * The simulator's defaults. `gattCache` is bluetoothd's shipped default (main.conf `[GATT] Cache`
 * = always: GATT objects stay exported while disconnected), so a client tested here meets the tree
 * it will meet on a stock system. A second pending Connect answers InProgress as BlueZ 5.82+ does;
 * the preset below gives 5.66's answers.
 */
export const DEFAULT_BEHAVIOUR: Readonly<BluezBehaviour> = Object.freeze({
  gattCache: 'always',
  legacyPendingConnectError: false,
  unpoweredConnectError: 'not-ready',
  temporaryDevicesOnPowerOff: 'remove',
});

/**
 * Every answer of a BlueZ release at once. `'bluez-5.66'`: Debian 12's bluetoothd 5.66 with its
 * stock main.conf, as the conformance suite recorded it (test/conformance/golden/bluez-5.66.json):
 * Cache=always, Failed "Operation already in progress" for a second pending Connect, Failed
 * "Input/output error" for Connect on an unpowered adapter, connectable temporary devices kept
 * by a power-off underneath bluetoothd.
 */
export const BEHAVIOUR_PRESETS: Readonly<Record<BluezBehaviourPreset, Readonly<BluezBehaviour>>> =
  Object.freeze({
    'bluez-5.66': Object.freeze({
      gattCache: 'always',
      legacyPendingConnectError: true,
      unpoweredConnectError: 'io-error',
      temporaryDevicesOnPowerOff: 'keep-connectable',
    }),
  });

/**
 * How callers describe the behaviour: a preset name, or single answers, optionally over a preset
 * (`{ preset: 'bluez-5.66', gattCache: 'no' }`).
 */
export type BluezBehaviourOption =
  BluezBehaviourPreset | (Partial<BluezBehaviour> & { preset?: BluezBehaviourPreset });

/** Applies behaviour options in order over the defaults; later layers win. Inputs are validated before. */
export function resolveBehaviour(...layers: (BluezBehaviourOption | undefined)[]): BluezBehaviour {
  let out: BluezBehaviour = { ...DEFAULT_BEHAVIOUR };
  for (const layer of layers) {
    if (layer === undefined) continue;
    if (typeof layer === 'string') {
      out = { ...BEHAVIOUR_PRESETS[layer] };
      continue;
    }
    const { preset, ...explicit } = layer;
    if (preset !== undefined) out = { ...BEHAVIOUR_PRESETS[preset] };
    for (const [key, value] of Object.entries(explicit)) {
      if (value !== undefined) (out as unknown as Record<string, unknown>)[key] = value;
    }
  }
  return out;
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
