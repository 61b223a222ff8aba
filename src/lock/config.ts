/**
 * Lock options, their defaults and their validation (no I/O). The paths are those of the Python
 * library bleak-connection-manager, so a host running Python and Node services coordinates:
 * `/run/bleak-cm-{adapter}-slot-{slot}.lock` and `/run/bleak-cm-{adapter}-scan.lock`. Every service
 * on a host must use the same directory and templates.
 */
import { isAbsolute, join } from 'node:path';

/** Connection-slot locks: at most `maxSlots` connect attempts per adapter across all processes. */
export interface SlotLockOptions {
  /** Directory of the lock files. Default `/run` (emptied at boot, so no lock survives a reboot). */
  dir?: string;
  /** File name with `{adapter}` and `{slot}`. Default `bleak-cm-{adapter}-slot-{slot}.lock`. */
  template?: string;
  /** Concurrent connect attempts per adapter, all processes together. Default 2. */
  maxSlots?: number;
  /** How long to wait for a slot. Default 15 000. */
  timeoutMs?: number;
  /** Poll interval while every slot is busy. Default 150. */
  retryIntervalMs?: number;
  /**
   * What a timeout does: false (default) goes on without a slot and emits a warning event, as the
   * Python library does (a hung holder must not stop every BLE service); true fails with
   * `LockTimeoutError`.
   */
  strict?: boolean;
}

/** The per-adapter scan lock around StartDiscovery. */
export interface ScanLockOptions {
  /** Directory of the lock files. Default `/run`. */
  dir?: string;
  /** File name with `{adapter}`. Default `bleak-cm-{adapter}-scan.lock`. */
  template?: string;
  /** How long to wait for the scan lock. Default 30 000. */
  timeoutMs?: number;
  /** Poll interval while the lock is busy. Default 250. */
  retryIntervalMs?: number;
  /** false (default): scan without the lock after the timeout (warning event); true: `LockTimeoutError`. */
  strict?: boolean;
}

/** Slot lock options after validation and defaults. */
export interface ResolvedSlotLock {
  readonly kind: 'slot';
  readonly dir: string;
  readonly template: string;
  readonly maxSlots: number;
  readonly timeoutMs: number;
  readonly retryIntervalMs: number;
  readonly strict: boolean;
}

/** Scan lock options after validation and defaults. */
export interface ResolvedScanLock {
  readonly kind: 'scan';
  readonly dir: string;
  readonly template: string;
  readonly timeoutMs: number;
  readonly retryIntervalMs: number;
  readonly strict: boolean;
}

/** The Python library's defaults (LockConfig / ScanLockConfig). */
export const SLOT_LOCK_DEFAULTS = Object.freeze({
  dir: '/run',
  template: 'bleak-cm-{adapter}-slot-{slot}.lock',
  maxSlots: 2,
  timeoutMs: 15_000,
  retryIntervalMs: 150,
});

/** The Python library's scan lock defaults. */
export const SCAN_LOCK_DEFAULTS = Object.freeze({
  dir: '/run',
  template: 'bleak-cm-{adapter}-scan.lock',
  timeoutMs: 30_000,
  retryIntervalMs: 250,
});

const PLACEHOLDER = /\{([^{}]*)\}/g;

function checkTemplate(template: unknown, field: string, allowed: readonly string[]): string {
  if (typeof template !== 'string') throw new TypeError(`${field} must be a string, got ${typeof template}`);
  for (const match of template.matchAll(PLACEHOLDER)) {
    if (!allowed.includes(match[1] ?? ''))
      throw new RangeError(
        `${field} has an unknown placeholder {${match[1]}} (allowed: {${allowed.join('}, {')}})`,
      );
  }
  for (const name of allowed) {
    if (!template.includes(`{${name}}`))
      throw new RangeError(`${field} must contain {${name}}, got "${template}"`);
  }
  // Substitute a worst-case value to see that the name stays one file inside the directory.
  const sample = fill(template, { adapter: 'hci0', slot: '0' });
  if (sample.includes('/') || sample.includes('\0') || sample === '.' || sample === '..') {
    throw new RangeError(
      `${field} must name a file inside the lock directory (no "/", not "." or ".."), got "${template}"`,
    );
  }
  return template;
}

function fill(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(PLACEHOLDER, (whole, name: string) => values[name] ?? whole);
}

function checkDir(dir: unknown, field: string): string {
  if (typeof dir !== 'string') throw new TypeError(`${field} must be a string, got ${typeof dir}`);
  if (!isAbsolute(dir)) throw new RangeError(`${field} must be an absolute path, got "${dir}"`);
  if (dir.includes('\0')) throw new RangeError(`${field} must not contain NUL`);
  return dir;
}

function checkMs(value: unknown, field: string, min: number): number {
  if (typeof value !== 'number') throw new TypeError(`${field} must be a number, got ${typeof value}`);
  if (!Number.isFinite(value) || value < min)
    throw new RangeError(`${field} must be a finite number >= ${min}, got ${value}`);
  return value;
}

function checkObject(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new TypeError(`${field} must be true, false or an options object`);
  return value as Record<string, unknown>;
}

function checkStrict(value: unknown, field: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new TypeError(`${field} must be a boolean`);
  return value;
}

/**
 * Validates the `lock` option (`true` = defaults, `false`/undefined = off). TypeError/RangeError
 * naming the field, before any I/O.
 */
export function resolveSlotLockOptions(value: unknown, field = 'lock'): ResolvedSlotLock | undefined {
  if (value === undefined || value === false) return undefined;
  const o = value === true ? {} : checkObject(value, field);
  const maxSlots = o.maxSlots ?? SLOT_LOCK_DEFAULTS.maxSlots;
  if (typeof maxSlots !== 'number') throw new TypeError(`${field}.maxSlots must be a number`);
  if (!Number.isInteger(maxSlots) || maxSlots < 1 || maxSlots > 64)
    throw new RangeError(`${field}.maxSlots must be an integer from 1 to 64, got ${maxSlots}`);
  return {
    kind: 'slot',
    dir: checkDir(o.dir ?? SLOT_LOCK_DEFAULTS.dir, `${field}.dir`),
    template: checkTemplate(o.template ?? SLOT_LOCK_DEFAULTS.template, `${field}.template`, [
      'adapter',
      'slot',
    ]),
    maxSlots,
    timeoutMs: checkMs(o.timeoutMs ?? SLOT_LOCK_DEFAULTS.timeoutMs, `${field}.timeoutMs`, 0),
    retryIntervalMs: checkMs(
      o.retryIntervalMs ?? SLOT_LOCK_DEFAULTS.retryIntervalMs,
      `${field}.retryIntervalMs`,
      1,
    ),
    strict: checkStrict(o.strict, `${field}.strict`),
  };
}

/** Validates the `scanLock` option (`true` = defaults, `false`/undefined = off). */
export function resolveScanLockOptions(value: unknown, field = 'scanLock'): ResolvedScanLock | undefined {
  if (value === undefined || value === false) return undefined;
  const o = value === true ? {} : checkObject(value, field);
  return {
    kind: 'scan',
    dir: checkDir(o.dir ?? SCAN_LOCK_DEFAULTS.dir, `${field}.dir`),
    template: checkTemplate(o.template ?? SCAN_LOCK_DEFAULTS.template, `${field}.template`, ['adapter']),
    timeoutMs: checkMs(o.timeoutMs ?? SCAN_LOCK_DEFAULTS.timeoutMs, `${field}.timeoutMs`, 0),
    retryIntervalMs: checkMs(
      o.retryIntervalMs ?? SCAN_LOCK_DEFAULTS.retryIntervalMs,
      `${field}.retryIntervalMs`,
      1,
    ),
    strict: checkStrict(o.strict, `${field}.strict`),
  };
}

/** Path of one slot lock file (`slot` 0-based). */
export function slotLockPath(
  config: Pick<ResolvedSlotLock, 'dir' | 'template'>,
  adapter: string,
  slot: number,
): string {
  return join(config.dir, fill(config.template, { adapter, slot: String(slot) }));
}

/** Path of an adapter's scan lock file. */
export function scanLockPath(config: Pick<ResolvedScanLock, 'dir' | 'template'>, adapter: string): string {
  return join(config.dir, fill(config.template, { adapter }));
}
