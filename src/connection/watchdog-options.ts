/**
 * The `watchdog`, `keepAlive` and `stallGuardMs` options: their shapes, presets and validation
 * (TypeError/RangeError naming the field, before any I/O).
 */
import { validateTimeoutMs, validateUuid } from '../bluez/validate.js';
import type { WatchdogConfig, ZombieAction } from '../machines/connection-contracts.js';
import type { WatchdogProbe } from '../machines/watchdog.js';

export type { WatchdogConfig, ZombieAction };
import { WATCHDOG_PRESETS, type WatchdogPresetName } from '../machines/profiles.js';

/** The notification watchdog of one connection. There is no default timeout. */
export interface WatchdogOptions {
  /**
   * Silence (no notification, no Value change, no `notifyActivity()`) after which the link is a
   * zombie, in ms. Only you know the device's cadence: a BMS notifies every 1–5 s, a sensor maybe
   * every 60 s; choose a few periods.
   */
  timeoutMs: number;
  /**
   * A characteristic UUID read once before the zombie is declared: if the device answers, the link
   * is alive and only quiet. Default: no probe.
   */
  probe?: string;
  /** Deadline of the probe read. Default 5 000 or timeoutMs, whichever is lower. */
  probeTimeoutMs?: number;
  /** What to do with a zombie. Default `reconnect`. */
  action?: ZombieAction;
}

const ACTIONS: readonly ZombieAction[] = ['reconnect', 'disconnect', 'report'];

/** Validates a `watchdog` option (a preset name or {@link WatchdogOptions}); undefined stays off. */
export function resolveWatchdog(
  value: WatchdogPresetName | WatchdogOptions | undefined,
  field = 'watchdog',
): WatchdogConfig | null {
  if (value === undefined) return null;
  let options: WatchdogOptions;
  if (typeof value === 'string') {
    const preset = (WATCHDOG_PRESETS as Record<string, WatchdogOptions | undefined>)[value];
    if (preset === undefined) {
      throw new TypeError(
        `${field} must be one of ${Object.keys(WATCHDOG_PRESETS).join(', ')} or { timeoutMs, probe?, action? }; got "${value}"`,
      );
    }
    options = preset;
  } else if (typeof value === 'object' && value !== null) {
    options = value;
  } else {
    throw new TypeError(`${field} must be a preset name or an object { timeoutMs, probe?, action? }`);
  }
  if (options.timeoutMs === undefined) {
    throw new TypeError(`${field}.timeoutMs is required (there is no default: only you know the cadence)`);
  }
  const timeoutMs = validateTimeoutMs(options.timeoutMs, `${field}.timeoutMs`);
  if (timeoutMs === 0) throw new RangeError(`${field}.timeoutMs must be > 0, got 0`);
  const action = options.action ?? 'reconnect';
  if (!ACTIONS.includes(action)) {
    throw new RangeError(
      `${field}.action must be one of ${ACTIONS.join(', ')}, got ${JSON.stringify(action)}`,
    );
  }
  let probe: WatchdogProbe | null = null;
  if (options.probe !== undefined) {
    const uuid = validateUuid(options.probe, `${field}.probe`);
    const probeTimeoutMs =
      options.probeTimeoutMs === undefined
        ? Math.min(5000, timeoutMs)
        : validateTimeoutMs(options.probeTimeoutMs, `${field}.probeTimeoutMs`);
    if (probeTimeoutMs === 0) throw new RangeError(`${field}.probeTimeoutMs must be > 0, got 0`);
    probe = { uuid, timeoutMs: probeTimeoutMs };
  } else if (options.probeTimeoutMs !== undefined) {
    throw new TypeError(`${field}.probeTimeoutMs needs ${field}.probe`);
  }
  return Object.freeze({ timeoutMs, probe, action });
}

/** Default of `stallGuardMs: true` (below the 60 s safety timeout of a whole attempt). */
export const DEFAULT_STALL_GUARD_MS = 45_000;

/** Validates `stallGuardMs`: false/undefined is off, true is 45 000, a number is ms (>= 100). */
export function resolveStallGuardMs(value: unknown, field = 'stallGuardMs'): number | null {
  if (value === undefined || value === false) return null;
  if (value === true) return DEFAULT_STALL_GUARD_MS;
  const ms = validateTimeoutMs(value, field);
  if (ms < 100)
    throw new RangeError(`${field} must be >= 100 ms (or true for ${DEFAULT_STALL_GUARD_MS}), got ${ms}`);
  return ms;
}

/** Validates `keepAlive`. Default false for a standalone connection. */
export function resolveKeepAlive(value: unknown, field = 'keepAlive'): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new TypeError(`${field} must be a boolean`);
  return value;
}
