/**
 * Options of `createConnectionActor` / `establishConnection`, their defaults (docs/defaults.md), and their
 * validation: bad input is a TypeError/RangeError naming the field, before any D-Bus traffic.
 */
import type { InspectionEvent, Observer } from 'xstate';
import type { DBusAuthMethod } from '../bluez/bus.js';
import type { BluezClient } from '../bluez/client-types.js';
import { validateAdapterName, validateMac, validateSignal, validateTimeoutMs } from '../bluez/validate.js';
import { DEFAULT_BACKOFF_MS, type FailureClass } from '../machines/connection-contracts.js';
import type { EscalationConfig } from '../machines/escalation.js';
import { EscalationPolicy, resolveEscalationConfig } from '../machines/escalation-policy.js';
import type { EscalationProfileName } from '../machines/profiles.js';
import { guardLogger } from './logger.js';
import type { Validator } from './validators.js';
import type { WatchdogConfig } from '../machines/connection-contracts.js';
import type { WatchdogPresetName } from '../machines/profiles.js';
import {
  resolveKeepAlive,
  resolveStallGuardMs,
  resolveWatchdog,
  type WatchdogOptions,
} from './watchdog-options.js';
import { resolveSlotLockOptions, type ResolvedSlotLock, type SlotLockOptions } from '../lock/config.js';
import {
  resolveDiscoveryOptions,
  type DiscoveryOptions,
  type ResolvedDiscovery,
} from '../discovery/options.js';

/**
 * Where log lines go: pino's calling convention, fields first, then the message, so a pino logger
 * (or `console`) is passed in unchanged. Every method is optional; the default logger is silent.
 */
export interface ConnectionLogger {
  debug?(fields: Record<string, unknown>, message: string): void;
  info?(fields: Record<string, unknown>, message: string): void;
  warn?(fields: Record<string, unknown>, message: string): void;
  error?(fields: Record<string, unknown>, message: string): void;
}

/** Options of one managed connection. */
export interface ConnectionOptions {
  /** Device address, AA:BB:CC:DD:EE:FF (any case). */
  address: string;
  /**
   * Adapters to use, in rotation order. Default: every adapter BlueZ knows, those that already
   * know the device first (rotating to an adapter that never saw the device burns a whole attempt).
   */
  adapters?: readonly string[];
  /** Attempts before giving up. Default 4. */
  maxAttempts?: number;
  /** Deadline of one attempt (discovery if needed, Connect, ServicesResolved). Default 20 000. */
  attemptTimeoutMs?: number;
  /** Deadline of the whole establishment; rejects with a TimeoutError. Default: none. */
  overallTimeoutMs?: number;
  /** Bound of every disconnect step. Default 5 000. */
  disconnectTimeoutMs?: number;
  /** Late-GATT re-check delays. Default [2000, 4000, 8000]. */
  lateGattDelaysMs?: readonly number[];
  /** How long discovery may run to find a device BlueZ does not know. Default 10 000. */
  rediscoveryTimeoutMs?: number;
  /** Cancels establishing; rejects with an AbortError. */
  signal?: AbortSignal;
  /**
   * Disconnect and remove a phantom (Connected without ServicesResolved) on the adapter in use.
   * Off by default: the "phantom" may be another process's link that is still resolving services.
   */
  closeInactiveConnections?: boolean;
  /** Your check after the built-in "GATT not empty" (see `gattNotEmpty`, `characteristicExists`, `readCharacteristic`). */
  validate?: Validator;
  /**
   * A profile name (`battery`, `sensor`, `onDemand`), a configuration, or an {@link EscalationPolicy}
   * shared across calls (its failure counts persist). Default: the escalation of docs/defaults.md.
   */
  escalation?: EscalationProfileName | Partial<EscalationConfig> | EscalationPolicy;
  /** Backoff per failure class (the defaults of docs/errors.md otherwise). */
  backoffMs?: Partial<Record<FailureClass, number>>;
  /**
   * Connection slots of each adapter (default 5, docs/defaults.md; CSR 5, Broadcom/Raspberry Pi 7, some
   * Realtek 2–3). A connect aborted with le-connection-abort-by-local while the adapter already holds
   * this many links is an out-of-slots error (the controller refused it, HCI 0x0d), which rotates to
   * the next adapter at once. An adapter pool sets this per adapter itself.
   */
  slotsPerAdapter?: number;
  /**
   * Cross-process connection slots (off by default): `true` or options. Each attempt holds one of
   * `maxSlots` (default 2) flock files per adapter, `/run/bleak-cm-{adapter}-slot-{slot}.lock` — the
   * Python library's files, so Python and Node services on one host share the limit — from
   * `locking` until validation starts or the failed attempt has been handled. A slot not free within
   * `timeoutMs` (default 15 000) goes on unlocked with a `lock-degraded` event, or fails with
   * `LockTimeoutError` when `strict`. Needs the optional dependency `koffi`.
   */
  lock?: boolean | SlotLockOptions;
  /**
   * How this process looks for devices (managed discovery): `scanLock` (the Python library's
   * `/run/bleak-cm-{adapter}-scan.lock` around our StartDiscovery…StopDiscovery), `mode: 'listen'`
   * (never StartDiscovery; rely on a discovery owner, see `startDiscoveryOwner`), `uuids` for the
   * discovery filter. Default: on-demand scans without a lock.
   */
  discovery?: DiscoveryOptions;
  /** Log lines (state changes at debug, escalations at info, phantoms and lock trouble at warn). */
  logger?: ConnectionLogger;
  /**
   * XState inspection: a callback (e.g. `createStateTrail().inspect`) or an observer, such as the
   * Stately inspector's `inspector.inspect` from `@statelyai/inspect`, passed unchanged.
   */
  inspect?: Inspect;
  /**
   * The notification watchdog: a zombie link (Connected, but no data for `timeoutMs`) is reported
   * and, by default, disconnected and reconnected. A preset (`battery` 30 s, `sensor` 180 s) or
   * `{ timeoutMs, probe?, probeTimeoutMs?, action? }`. Default: off (there is no default timeout).
   */
  watchdog?: WatchdogPresetName | WatchdogOptions;
  /**
   * Reconnect after a link loss or a zombie, with the failure class's backoff, until the attempts
   * of a run are exhausted (then `closed` says so). Default false: a lost link ends in `idle`.
   */
  keepAlive?: boolean;
  /**
   * The stall guard: a worker thread that cancels a pending Connect out of band when this process's
   * event loop is blocked for this long (ms; `true` = 45 000). Default: off.
   */
  stallGuardMs?: number | boolean;
}

/** What XState's `inspect` option takes: a callback or an observer of inspection events. */
export type Inspect = Observer<InspectionEvent> | ((event: InspectionEvent) => void);

/**
 * Validates an `inspect` option (a function, or an object with a `next` function).
 * @throws TypeError naming the field, before any I/O
 */
export function validateInspect(value: unknown, field = 'inspect'): Inspect | undefined {
  if (value === undefined || typeof value === 'function') return value as Inspect | undefined;
  if (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { next?: unknown }).next === 'function'
  ) {
    return value;
  }
  throw new TypeError(`${field} must be a function or an observer with next() (e.g. inspector.inspect)`);
}

/** Options of `createConnectionActor`: a BluezClient is required (the caller owns it). */
export interface ConnectionActorOptions extends ConnectionOptions {
  /** The BlueZ client to use. */
  bluez: BluezClient;
}

/** Options of `establishConnection`: a BluezClient, or a bus address to open one for this connection. */
export interface EstablishOptions extends ConnectionOptions {
  /** A shared BlueZ client. When absent one is opened on `busAddress` and closed with the connection. */
  bluez?: BluezClient;
  /** D-Bus address when `bluez` is absent (default: the system bus). */
  busAddress?: string;
  /** D-Bus authentication mechanisms when `bluez` is absent (see `OpenBluezOptions.authMethods`). */
  authMethods?: readonly DBusAuthMethod[];
}

/** Options after validation and defaults. */
export interface ResolvedOptions {
  readonly address: string;
  readonly adapters: readonly string[] | undefined;
  readonly maxAttempts: number;
  readonly attemptTimeoutMs: number;
  readonly overallTimeoutMs: number | undefined;
  readonly disconnectTimeoutMs: number;
  readonly lateGattDelaysMs: readonly number[];
  readonly rediscoveryTimeoutMs: number;
  readonly signal: AbortSignal | undefined;
  readonly closeInactiveConnections: boolean;
  readonly validate: Validator | undefined;
  readonly escalation: EscalationConfig;
  readonly policy: EscalationPolicy | undefined;
  readonly backoffMs: Partial<Record<FailureClass, number>>;
  readonly slotsPerAdapter: number;
  readonly lock: ResolvedSlotLock | undefined;
  readonly discovery: ResolvedDiscovery;
  readonly logger: ConnectionLogger;
  readonly watchdog: WatchdogConfig | null;
  readonly keepAlive: boolean;
  readonly stallGuardMs: number | null;
}

/** Telink-based sensors export their services 2–10 s after ServicesResolved (docs/defaults.md). */
const LATE_GATT_DEFAULT_DELAYS_MS: readonly number[] = Object.freeze([2000, 4000, 8000]);

/** The defaults of docs/defaults.md. */
export const CONNECTION_DEFAULTS = Object.freeze({
  maxAttempts: 4,
  attemptTimeoutMs: 20_000,
  disconnectTimeoutMs: 5_000,
  lateGattDelaysMs: LATE_GATT_DEFAULT_DELAYS_MS,
  rediscoveryTimeoutMs: 10_000,
  slotsPerAdapter: 5,
});

function positiveInteger(value: unknown, field: string): number {
  if (typeof value !== 'number') throw new TypeError(`${field} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${field} must be an integer >= 1, got ${value}`);
  return value;
}

function positiveTimeout(value: unknown, field: string): number {
  const ms = validateTimeoutMs(value, field);
  if (ms === 0) throw new RangeError(`${field} must be > 0, got 0`);
  return ms;
}

/** Scan-lock timeouts reach the log as warnings (the caller's own observer still gets every event). */
function withDiscoveryLog(discovery: ResolvedDiscovery, logger: ConnectionLogger): ResolvedDiscovery {
  if (logger.warn === undefined && logger.debug === undefined) return discovery;
  return {
    ...discovery,
    onEvent: (event) => {
      if (event.type === 'scan-lock-degraded') {
        logger.warn?.(
          { ...event },
          `scan lock of ${event.adapter} not free within ${Math.round(event.waitedMs)} ms; scanning without it`,
        );
      } else logger.debug?.({ ...event }, `${event.type} on ${event.adapter}`);
      discovery.onEvent?.(event);
    },
  };
}

/** Validates every option and applies the defaults. No I/O. */
export function resolveOptions(options: ConnectionOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const address = validateMac(options.address, 'address');
  let adapters: string[] | undefined;
  if (options.adapters !== undefined) {
    if (!Array.isArray(options.adapters)) throw new TypeError('adapters must be an array of adapter names');
    if (options.adapters.length === 0) throw new RangeError('adapters must name at least one adapter');
    adapters = options.adapters.map((a, i) => validateAdapterName(a, `adapters[${i}]`));
    if (new Set(adapters).size !== adapters.length)
      throw new RangeError('adapters must not repeat an adapter');
  }
  const lateGattDelaysMs = options.lateGattDelaysMs ?? CONNECTION_DEFAULTS.lateGattDelaysMs;
  if (!Array.isArray(lateGattDelaysMs))
    throw new TypeError('lateGattDelaysMs must be an array of milliseconds');
  const lateGattDelays = (lateGattDelaysMs as readonly unknown[]).map((d, i) =>
    validateTimeoutMs(d, `lateGattDelaysMs[${i}]`),
  );
  const backoffMs: Partial<Record<FailureClass, number>> = {};
  if (options.backoffMs !== undefined) {
    if (typeof options.backoffMs !== 'object' || options.backoffMs === null) {
      throw new TypeError('backoffMs must be an object of failure class → milliseconds');
    }
    for (const [cls, ms] of Object.entries(options.backoffMs)) {
      if (!(cls in DEFAULT_BACKOFF_MS)) {
        throw new RangeError(
          `backoffMs.${cls} is not a failure class (${Object.keys(DEFAULT_BACKOFF_MS).join(', ')})`,
        );
      }
      backoffMs[cls as FailureClass] = validateTimeoutMs(ms, `backoffMs.${cls}`);
    }
  }
  validateInspect(options.inspect);
  if (options.validate !== undefined && typeof options.validate !== 'function') {
    throw new TypeError('validate must be a function (context) => boolean | Promise<boolean>');
  }
  if (
    options.closeInactiveConnections !== undefined &&
    typeof options.closeInactiveConnections !== 'boolean'
  ) {
    throw new TypeError('closeInactiveConnections must be a boolean');
  }
  const policy = options.escalation instanceof EscalationPolicy ? options.escalation : undefined;
  const escalation =
    policy?.config ??
    resolveEscalationConfig(
      options.escalation as EscalationProfileName | Partial<EscalationConfig> | undefined,
    );
  return {
    address,
    adapters,
    maxAttempts: positiveInteger(options.maxAttempts ?? CONNECTION_DEFAULTS.maxAttempts, 'maxAttempts'),
    attemptTimeoutMs: positiveTimeout(
      options.attemptTimeoutMs ?? CONNECTION_DEFAULTS.attemptTimeoutMs,
      'attemptTimeoutMs',
    ),
    overallTimeoutMs:
      options.overallTimeoutMs === undefined
        ? undefined
        : positiveTimeout(options.overallTimeoutMs, 'overallTimeoutMs'),
    disconnectTimeoutMs: positiveTimeout(
      options.disconnectTimeoutMs ?? CONNECTION_DEFAULTS.disconnectTimeoutMs,
      'disconnectTimeoutMs',
    ),
    lateGattDelaysMs: lateGattDelays,
    rediscoveryTimeoutMs: positiveTimeout(
      options.rediscoveryTimeoutMs ?? CONNECTION_DEFAULTS.rediscoveryTimeoutMs,
      'rediscoveryTimeoutMs',
    ),
    signal: validateSignal(options.signal, 'signal'),
    closeInactiveConnections: options.closeInactiveConnections ?? false,
    validate: options.validate,
    escalation,
    policy,
    backoffMs,
    slotsPerAdapter: positiveInteger(
      options.slotsPerAdapter ?? CONNECTION_DEFAULTS.slotsPerAdapter,
      'slotsPerAdapter',
    ),
    lock: resolveSlotLockOptions(options.lock, 'lock'),
    discovery: withDiscoveryLog(
      resolveDiscoveryOptions(options.discovery, 'discovery'),
      guardLogger(options.logger),
    ),
    logger: guardLogger(options.logger),
    watchdog: resolveWatchdog(options.watchdog),
    keepAlive: resolveKeepAlive(options.keepAlive),
    stallGuardMs: resolveStallGuardMs(options.stallGuardMs),
  };
}
