/**
 * The notification watchdog for a device the caller connects itself (through node-ble or any other
 * client): the same watchdog machine the connection actor runs in `connected`, with the same
 * `zombie` event. A zombie is disconnected (verified, on the device's own adapter) unless `action` is
 * `report`, then `onTimeout` runs; the watchdog re-arms when data flows again and whenever the
 * device connects again, so it keeps watching across the caller's reconnects.
 */
import { createActor, type Actor, type InspectionEvent } from 'xstate';
import { openBluez } from '../bluez/client.js';
import type { BluezClient } from '../bluez/client-types.js';
import { devicePath, validateAdapterName, validateMac } from '../bluez/validate.js';
import { onDeviceActivity, providedWatchdogMachine } from '../actors/watchdog-actors.js';
import type { ZombieReport } from '../machines/watchdog.js';
import { TypedEmitter } from '../bluez/emitter.js';
import { resolveWatchdog } from './watchdog-options.js';
import type { ConnectionLogger } from './options.js';

/** The device to watch: a node-ble `Device` (its `adapter` and `device` fields) or adapter + address. */
export type WatchedDevice =
  | { readonly adapter: string; readonly device: string }
  | { readonly adapter: string; readonly address: string };

/** Options of {@link ConnectionWatchdog}. */
export interface ConnectionWatchdogOptions {
  /** Silence after which the link is a zombie, in ms. Required: there is no default. */
  timeoutMs: number;
  /** The device (a node-ble Device works as it is). */
  device: WatchedDevice;
  /** Called after a zombie was handled (errors are logged, not thrown). */
  onTimeout?: (report: ZombieReport) => void | Promise<void>;
  /** Read this characteristic once before declaring a zombie; an answer means the link is alive. */
  probe?: string;
  /** Deadline of the probe read. Default min(5 000, timeoutMs). */
  probeTimeoutMs?: number;
  /** `disconnect` (default): verified disconnect on the device's adapter; `report`: only the event. */
  action?: 'disconnect' | 'report';
  /** A BlueZ client to use; without it one is opened on `busAddress` (system bus) and closed by `stop()`. */
  bluez?: BluezClient;
  /** D-Bus address when `bluez` is absent. */
  busAddress?: string;
  /** Bound of the disconnect steps. Default 5 000. */
  disconnectTimeoutMs?: number;
  logger?: ConnectionLogger;
  /** XState inspection callback. */
  inspect?: (event: InspectionEvent) => void;
}

/** Events of a {@link ConnectionWatchdog}. */
export type ConnectionWatchdogEvents = {
  /** A zombie was declared (before it is disconnected). */
  zombie: (report: ZombieReport & { action: 'disconnect' | 'report' }) => void;
};

function targetOf(device: WatchedDevice): { adapter: string; address: string } {
  if (typeof device !== 'object' || device === null) {
    throw new TypeError('device must be a node-ble Device or { adapter, address }');
  }
  const adapter = validateAdapterName(device.adapter, 'device.adapter');
  if ('address' in device) return { adapter, address: validateMac(device.address, 'device.address') };
  const match = typeof device.device === 'string' ? /^dev_([0-9A-Fa-f_]{17})$/.exec(device.device) : null;
  if (match === null)
    throw new TypeError('device.device must be a node-ble device name like dev_AA_BB_CC_DD_EE_FF');
  return { adapter, address: validateMac((match[1] ?? '').replace(/_/g, ':'), 'device.device') };
}

/**
 * A notification watchdog for a device held by the caller (the counterpart of the Python library's
 * `ConnectionWatchdog(timeout, on_timeout, client, device)`, without its one-shot and hci0 defects).
 */
export class ConnectionWatchdog extends TypedEmitter<ConnectionWatchdogEvents> {
  readonly #options: ConnectionWatchdogOptions;
  readonly #target: { adapter: string; address: string };
  readonly #config: NonNullable<ReturnType<typeof resolveWatchdog>>;
  readonly #action: 'disconnect' | 'report';
  #bluez: BluezClient | undefined;
  #ownBluez = false;
  #actor: Actor<ReturnType<typeof providedWatchdogMachine>> | undefined;
  #offs: Array<() => void> = [];
  #running = false;
  #starting: Promise<void> | undefined;
  #wasConnected = false;
  #lastActivity = 0;
  #handling = new Set<Promise<void>>();

  /** Validates every option (TypeError/RangeError naming the field); no I/O until `start()`. */
  constructor(options: ConnectionWatchdogOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    this.#options = options;
    this.#target = targetOf(options.device);
    const config = resolveWatchdog(
      { timeoutMs: options.timeoutMs, probe: options.probe, probeTimeoutMs: options.probeTimeoutMs },
      'options',
    );
    if (config === null) throw new TypeError('options.timeoutMs is required');
    this.#config = config;
    const action = options.action ?? 'disconnect';
    if (action !== 'disconnect' && action !== 'report') {
      throw new RangeError(`options.action must be "disconnect" or "report", got ${JSON.stringify(action)}`);
    }
    this.#action = action;
    if (options.onTimeout !== undefined && typeof options.onTimeout !== 'function') {
      throw new TypeError('options.onTimeout must be a function');
    }
  }

  /** True between `start()` and `stop()`. */
  get isRunning(): boolean {
    return this.#running;
  }

  /** `performance.now()` of the last activity seen (0 before start). */
  get lastActivity(): number {
    return this.#lastActivity;
  }

  /** Zombies declared since `start()`. */
  get zombies(): number {
    return this.#zombies;
  }
  #zombies = 0;

  /** Starts watching (opens a BlueZ client when none was given). Idempotent. */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    if (this.#options.bluez !== undefined) {
      this.#bluez = this.#options.bluez;
    } else {
      this.#bluez = await openBluez({ busAddress: this.#options.busAddress });
      this.#ownBluez = true;
    }
    const bluez = this.#bluez;
    this.#running = true;
    this.#wasConnected = bluez.device(this.#target.adapter, this.#target.address)?.connected ?? false;
    this.#offs.push(
      bluez.mirror.onPath(devicePath(this.#target.adapter, this.#target.address), () => {
        const connected = bluez.device(this.#target.adapter, this.#target.address)?.connected ?? false;
        // Connected again (the caller reconnected): a fresh silence allowance.
        if (connected && !this.#wasConnected) this.#arm();
        this.#wasConnected = connected;
      }),
      onDeviceActivity(bluez, this.#target, () => {
        this.#lastActivity = performance.now();
      }),
    );
    this.#arm();
  }

  #arm(): void {
    if (!this.#running || this.#bluez === undefined) return;
    this.#actor?.stop();
    this.#lastActivity = performance.now();
    const actor = createActor(providedWatchdogMachine(this.#bluez), {
      input: {
        address: this.#target.address,
        adapter: this.#target.adapter,
        timeoutMs: this.#config.timeoutMs,
        probe: this.#config.probe,
      },
      inspect: this.#options.inspect,
    });
    actor.on('zombie', (event) => {
      const { type: _type, ...report } = event;
      this.#zombies += 1;
      const handling = this.#handle(report).finally(() => this.#handling.delete(handling));
      this.#handling.add(handling);
    });
    this.#actor = actor;
    actor.start();
  }

  async #handle(report: ZombieReport): Promise<void> {
    const logger = this.#options.logger;
    logger?.warn?.(
      { address: report.address, adapter: report.adapter, silenceMs: report.silenceMs },
      `zombie link on ${report.adapter}: Connected but no data for ${report.silenceMs} ms (timeout ${report.timeoutMs} ms); ${this.#action}`,
    );
    this.emit('zombie', { ...report, action: this.#action });
    if (this.#action === 'disconnect' && this.#bluez !== undefined) {
      try {
        await this.#bluez.verifiedDisconnect(report.adapter, report.address, {
          timeoutMs: this.#options.disconnectTimeoutMs ?? 5000,
        });
      } catch (err) {
        logger?.error?.(
          { address: report.address, adapter: report.adapter },
          `disconnecting the zombie link failed: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
    }
    try {
      await this.#options.onTimeout?.(report);
    } catch (err) {
      logger?.error?.(
        { address: report.address },
        `onTimeout threw: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }

  /** Data arrived by a path the watchdog does not see: resets the silence allowance. */
  notifyActivity(): void {
    this.#lastActivity = performance.now();
    this.#actor?.send({ type: 'ACTIVITY' });
  }

  /**
   * Stops watching; waits for a zombie being handled; closes the BlueZ client it opened. Safe to
   * call before `start()` and repeatedly.
   */
  async stop(): Promise<void> {
    await this.#starting?.catch(() => {});
    this.#running = false;
    this.#starting = undefined;
    this.#actor?.stop();
    this.#actor = undefined;
    for (const off of this.#offs.splice(0)) off();
    await Promise.all([...this.#handling]);
    if (this.#ownBluez) await this.#bluez?.close();
    this.#bluez = undefined;
    this.#ownBluez = false;
  }
}
