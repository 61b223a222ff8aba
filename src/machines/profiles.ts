/**
 * Escalation profiles with the Python original's numbers (docs/defaults.md, Profiles), frozen:
 * the original's profiles were shared mutable module objects, so one caller's tweak
 * changed every other caller's policy.
 */
import type { EscalationConfig } from './escalation.js';

/**
 * The default (docs/defaults.md): diagnose at 1 failure, rotate at 2, clear at 4, reset at 6 (off),
 * cooldown 300 s.
 */
export const DEFAULT_ESCALATION: EscalationConfig = Object.freeze({
  diagnose: true,
  clear: true,
  rotate: true,
  reset: false,
  rotateAfter: 2,
  clearAfter: 4,
  resetAfter: 6,
  resetCooldownMs: 300_000,
  maxLevel: 'reset',
});

/**
 * Battery monitors (BMS): the link matters more than the other links on the adapter, so a reset is
 * allowed after 6 consecutive failures, at most once per 300 s per adapter.
 */
export const PROFILE_BATTERY: EscalationConfig = Object.freeze({
  ...DEFAULT_ESCALATION,
  reset: true,
  resetAfter: 6,
  resetCooldownMs: 300_000,
});

/** Sensors (~60 s cadence): never reset an adapter for a sensor; rotation is the ceiling. */
export const PROFILE_SENSOR: EscalationConfig = Object.freeze({
  ...DEFAULT_ESCALATION,
  reset: false,
  maxLevel: 'rotate',
});

/**
 * Connect-on-demand devices (relays, locks): rotate on the first failure, never clear or reset.
 * Unlike the original, where rotate was a no-op and this profile did nothing at all, rotation here
 * really changes the adapter (with one adapter and no pool it falls back to retry).
 */
export const PROFILE_ON_DEMAND: EscalationConfig = Object.freeze({
  ...DEFAULT_ESCALATION,
  clear: false,
  reset: false,
  rotateAfter: 1,
  maxLevel: 'rotate',
});

/** Names accepted wherever a profile can be given. */
export type EscalationProfileName = 'battery' | 'sensor' | 'onDemand';

/** The profiles by name. */
export const ESCALATION_PROFILES: Readonly<Record<EscalationProfileName, EscalationConfig>> = Object.freeze({
  battery: PROFILE_BATTERY,
  sensor: PROFILE_SENSOR,
  onDemand: PROFILE_ON_DEMAND,
});

/**
 * Watchdog presets (`watchdog: 'battery'`): a silence of several notification periods. A BMS
 * notifies every 1–5 s, so 30 s of silence is a dead link; a sensor reports about once a minute, so
 * three missed reports (180 s). Connect-on-demand devices do not stream: no preset.
 */
export const WATCHDOG_PRESETS = Object.freeze({
  battery: Object.freeze({ timeoutMs: 30_000 }),
  sensor: Object.freeze({ timeoutMs: 180_000 }),
});

/** Names accepted as `watchdog` presets. */
export type WatchdogPresetName = keyof typeof WATCHDOG_PRESETS;
