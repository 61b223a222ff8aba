/**
 * Escalation: what to do after a failed attempt, as a pure decision.
 *
 * The Python original (bleak-connection-manager) kept this in a mutable policy object whose
 * "rotate" step did nothing, which never saw validation failures and whose failed
 * resets never started the cooldown, with 0.0 as "never reset" so the first 300 s of uptime
 * blocked resets. Here the decision is a function of plain data: the per-adapter ledger, the
 * configuration, the failure class and the clock; the connection machine calls it once per failure
 * (on entering `escalating`, keeping the answer in context) and a test can call it directly.
 */
import type { FailureClass } from './connection-contracts.js';

/** Escalation steps, least to most disruptive (the order used by {@link EscalationConfig.maxLevel}). */
export type EscalationAction = 'retry' | 'diagnose' | 'clear' | 'rotate' | 'reset';

/** Level order of {@link EscalationAction}; a ceiling disables every level above it. */
export const ESCALATION_LEVELS: readonly EscalationAction[] = Object.freeze([
  'retry',
  'diagnose',
  'clear',
  'rotate',
  'reset',
]);

/** Thresholds and switches of the escalation ladder (counts are consecutive failures per adapter). */
export interface EscalationConfig {
  /** Re-inspect the device from BlueZ itself (not the mirror) and check the adapter before the next attempt. */
  readonly diagnose: boolean;
  /** Remove BlueZ's cached Device1 (and wait for it to be rediscovered) before the next attempt. */
  readonly clear: boolean;
  /** Move to another adapter: the pool's choice, or the next one of the configured list. */
  readonly rotate: boolean;
  /** Run the adapter recovery step. Off by default: it drops every connection on the adapter. */
  readonly reset: boolean;
  /** Failures on one adapter before rotating. */
  readonly rotateAfter: number;
  /** Failures on one adapter before clearing the device cache. */
  readonly clearAfter: number;
  /** Failures on one adapter before resetting it. */
  readonly resetAfter: number;
  /** Minimum time between two resets of one adapter, failed resets included. */
  readonly resetCooldownMs: number;
  /** Highest level allowed. */
  readonly maxLevel: EscalationAction;
}

/**
 * Per-adapter bookkeeping. Plain data, so it can live in machine context and in the inspector.
 * An adapter absent from `lastResetAt` has had no reset yet (explicitly absent, not a 0 timestamp).
 */
export interface EscalationLedger {
  /** Consecutive failures per adapter since its last success or reset. */
  readonly failures: Readonly<Record<string, number>>;
  /** Epoch ms of the last reset attempt per adapter, successful or not. */
  readonly lastResetAt: Readonly<Record<string, number>>;
}

/** What the decision needs to know about the failure at hand. */
export interface EscalationQuestion {
  /** Adapter of the failed attempt. */
  readonly adapter: string;
  /** Class of the failure (docs/errors.md, Failure classes). */
  readonly failureClass: FailureClass;
  /** Epoch ms now. */
  readonly now: number;
  /** True when rotating can change anything: a parent pool exists or more than one adapter is configured. */
  readonly canRotate: boolean;
}

/** An empty ledger. */
export function emptyLedger(): EscalationLedger {
  return { failures: {}, lastResetAt: {} };
}

/**
 * Whether a failure of this class counts toward the escalation thresholds of its adapter. Every
 * class does (validation failures too, unlike the original) except `outOfSlots`: a refusal for
 * lack of slots says the controller is full, not that it is unwell. Counting it let a device that
 * was refused again and again while it waited for a slot (its ledger outlives the park) push a
 * full adapter to a reset, which drops every other link on it (saturation is fixed by
 * rotation and queueing, never by a reset: docs/errors.md, `outOfSlots`), or push a later genuine
 * failure over the threshold. Nor does `limitsExceeded`: dbus-daemon refusing a call for its
 * per-connection reply limit says this process had too many calls pending, nothing about the
 * adapter or the device.
 */
export function countsTowardEscalation(failureClass: FailureClass): boolean {
  return failureClass !== 'outOfSlots' && failureClass !== 'limitsExceeded';
}

/**
 * The ledger after one more failure on `adapter` (validation failures count too). With the
 * failure's class, an `outOfSlots` refusal leaves the ledger as it is ({@link countsTowardEscalation}).
 */
export function recordFailure(
  ledger: EscalationLedger,
  adapter: string,
  failureClass?: FailureClass,
): EscalationLedger {
  if (failureClass !== undefined && !countsTowardEscalation(failureClass)) return ledger;
  return {
    failures: { ...ledger.failures, [adapter]: (ledger.failures[adapter] ?? 0) + 1 },
    lastResetAt: ledger.lastResetAt,
  };
}

/** The ledger after a success on `adapter`: its failure streak ends. */
export function recordSuccess(ledger: EscalationLedger, adapter: string): EscalationLedger {
  if ((ledger.failures[adapter] ?? 0) === 0) return ledger;
  return { failures: { ...ledger.failures, [adapter]: 0 }, lastResetAt: ledger.lastResetAt };
}

/**
 * The ledger after a reset attempt of `adapter` at `at`, whether the reset worked or not: a failing
 * reset must not be retried on every following failure (docs/errors.md, Escalation).
 */
export function recordReset(ledger: EscalationLedger, adapter: string, at: number): EscalationLedger {
  return {
    failures: { ...ledger.failures, [adapter]: 0 },
    lastResetAt: { ...ledger.lastResetAt, [adapter]: at },
  };
}

function levelEnabled(config: EscalationConfig, action: EscalationAction): boolean {
  if (ESCALATION_LEVELS.indexOf(action) > ESCALATION_LEVELS.indexOf(config.maxLevel)) return false;
  switch (action) {
    case 'retry':
      return true;
    case 'diagnose':
      return config.diagnose;
    case 'clear':
      return config.clear;
    case 'rotate':
      return config.rotate;
    case 'reset':
      return config.reset;
  }
}

/** True when `adapter` may be reset now: never reset before, or the cooldown has passed. */
export function resetCooldownElapsed(
  config: EscalationConfig,
  ledger: EscalationLedger,
  adapter: string,
  now: number,
): boolean {
  const last = ledger.lastResetAt[adapter];
  return last === undefined || now - last >= config.resetCooldownMs;
}

/**
 * The escalation step for a failure that is already counted in `ledger`.
 *
 * `outOfSlots` is decided first and on its own: rotate (a pool moves the device to an adapter with a
 * free slot or queues it until one frees), or retry after the class's backoff when there is nothing
 * to rotate to. It never resets or clears, whatever the count: a reset of a full adapter drops every
 * link on it and frees no slot for anyone but the next refusal (docs/errors.md, `outOfSlots`).
 * `limitsExceeded` (dbus-daemon's per-connection reply limit) is always a plain retry after its backoff.
 *
 * Every other class follows the original's order (docs/errors.md, Escalation): reset (count,
 * enabled, cooldown) → clear → rotate → diagnose → retry. Clear before rotate keeps the original's
 * observable sequence (1 diagnose, 2–3 rotate, ≥4 clear); unlike the original, rotate is only chosen
 * when it can change the adapter.
 */
export function decideEscalation(
  config: EscalationConfig,
  ledger: EscalationLedger,
  question: EscalationQuestion,
): EscalationAction {
  const count = ledger.failures[question.adapter] ?? 0;
  const rotateUsable = levelEnabled(config, 'rotate') && question.canRotate;
  if (question.failureClass === 'outOfSlots') return rotateUsable ? 'rotate' : 'retry';
  // The bus refused the call for this process's own load: wait for calls to drain and retry here.
  if (question.failureClass === 'limitsExceeded') return 'retry';
  if (
    count >= config.resetAfter &&
    levelEnabled(config, 'reset') &&
    resetCooldownElapsed(config, ledger, question.adapter, question.now)
  ) {
    return 'reset';
  }
  if (count >= config.clearAfter && levelEnabled(config, 'clear')) return 'clear';
  if (count >= config.rotateAfter && rotateUsable) return 'rotate';
  if (count >= 1 && levelEnabled(config, 'diagnose')) return 'diagnose';
  return 'retry';
}

/** Throws a RangeError/TypeError naming the field when a configuration is unusable. */
export function assertEscalationConfig(config: EscalationConfig, field = 'escalation'): void {
  for (const key of ['rotateAfter', 'clearAfter', 'resetAfter'] as const) {
    const value = config[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
      throw new RangeError(`${field}.${key} must be an integer >= 1, got ${String(value)}`);
    }
  }
  if (typeof config.resetCooldownMs !== 'number' || !(config.resetCooldownMs >= 0)) {
    throw new RangeError(
      `${field}.resetCooldownMs must be a number >= 0, got ${String(config.resetCooldownMs)}`,
    );
  }
  if (!ESCALATION_LEVELS.includes(config.maxLevel)) {
    throw new TypeError(
      `${field}.maxLevel must be one of ${ESCALATION_LEVELS.join(', ')}, got ${String(config.maxLevel)}`,
    );
  }
  for (const key of ['diagnose', 'clear', 'rotate', 'reset'] as const) {
    if (typeof config[key] !== 'boolean') throw new TypeError(`${field}.${key} must be a boolean`);
  }
}
