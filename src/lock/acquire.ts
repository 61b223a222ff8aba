/**
 * Taking the slot and scan locks: open the lock file(s), try flock(LOCK_EX | LOCK_NB) on each, and
 * poll every `retryIntervalMs` until one is free or `timeoutMs` has passed (measured on the clock,
 * not counted). The wait is a timer, never a blocking call, and `signal` ends it at once.
 *
 * Semantics shared with the Python library: slots 0..maxSlots-1 are tried in order and the first
 * free one wins; a lock is held by an open file description, so two acquisitions in one process
 * exclude each other just like two processes; the kernel releases it when the fd is closed or the
 * process dies (SIGKILL included), so there is never a stale lock to clean up; files are never
 * deleted (deleting one while another process waits on it would split the lock in two).
 */
import type { FileHandle } from 'node:fs/promises';
import { LockTimeoutError } from '../bluez/errors.js';
import { validateAdapterName } from '../bluez/validate.js';
import { scanLockPath, slotLockPath, type ResolvedScanLock, type ResolvedSlotLock } from './config.js';
import { loadFlock, type FlockBinding } from './flock.js';
import { openLockFile } from './lock-file.js';

/** A lock this process holds. */
export interface HeldLock {
  /** `slot` or `scan`. */
  readonly kind: 'slot' | 'scan';
  readonly adapter: string;
  /** The lock file. */
  readonly path: string;
  /** Slot number (0-based) of a slot lock, null for a scan lock. */
  readonly slot: number | null;
  /** How long the acquisition waited (ms). */
  readonly waitedMs: number;
  /** Releases the lock (flock LOCK_UN at once, then closes the fd). Safe to call twice. */
  release(): void;
}

/** What an acquisition ended with: the lock, or (not strict) a timeout to go on without it. */
export type LockAcquisition =
  | { readonly held: HeldLock; readonly degraded: false }
  | {
      readonly held: null;
      readonly degraded: true;
      readonly waitedMs: number;
      readonly paths: readonly string[];
    };

/** Options of one acquisition. */
export interface AcquireOptions {
  /** Ends the wait at once with the signal's reason. */
  signal?: AbortSignal;
}

const heldHere = new Map<string, HeldLock>();

/** Lock files this process holds right now (tests check that nothing is left behind). */
export function heldLocks(): HeldLock[] {
  return [...heldHere.values()];
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('aborted', 'AbortError');
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function hold(
  flock: FlockBinding,
  handle: FileHandle,
  kind: 'slot' | 'scan',
  adapter: string,
  path: string,
  slot: number | null,
  waitedMs: number,
): HeldLock {
  let released = false;
  const lock: HeldLock = {
    kind,
    adapter,
    path,
    slot,
    waitedMs,
    release() {
      if (released) return;
      released = true;
      heldHere.delete(`${path}#${handle.fd}`);
      // Unlock synchronously (another process may take it in its next poll), then close.
      try {
        flock.unlock(handle.fd);
      } finally {
        void handle.close().catch(() => {});
      }
    },
  };
  heldHere.set(`${path}#${handle.fd}`, lock);
  return lock;
}

async function acquire(
  kind: 'slot' | 'scan',
  adapter: string,
  paths: readonly string[],
  timing: { timeoutMs: number; retryIntervalMs: number; strict: boolean },
  options: AcquireOptions,
): Promise<LockAcquisition> {
  const { signal } = options;
  if (signal?.aborted) throw abortReason(signal);
  const flock = await loadFlock();
  const startedAt = performance.now();
  const handles: FileHandle[] = [];
  let winner = -1;
  try {
    for (const path of paths) handles.push(await openLockFile(path, adapter));
    for (;;) {
      if (signal?.aborted) throw abortReason(signal);
      winner = handles.findIndex((h) => flock.tryLock(h.fd));
      const waitedMs = performance.now() - startedAt;
      if (winner >= 0) {
        const handle = handles[winner] as FileHandle;
        return {
          held: hold(
            flock,
            handle,
            kind,
            adapter,
            paths[winner] as string,
            kind === 'slot' ? winner : null,
            waitedMs,
          ),
          degraded: false,
        };
      }
      if (waitedMs >= timing.timeoutMs) {
        const what =
          kind === 'slot'
            ? `a connection slot on ${adapter} (${paths.length} slots)`
            : `the scan lock of ${adapter}`;
        if (timing.strict) {
          throw new LockTimeoutError(
            `${what} was not free within ${timing.timeoutMs} ms (${paths.join(', ')})`,
            { adapter },
          );
        }
        return { held: null, degraded: true, waitedMs, paths };
      }
      await sleep(Math.min(timing.retryIntervalMs, timing.timeoutMs - waitedMs), signal);
    }
  } finally {
    handles.forEach((h, i) => {
      if (i !== winner) void h.close().catch(() => {});
    });
  }
}

/**
 * Takes a connection slot on `adapter`: the first free of slots 0..maxSlots-1, polling until one
 * frees or the timeout. Resolves `{ degraded: true }` on a timeout unless `config.strict`.
 * @throws LockTimeoutError (strict), LockPathError, LockPermissionError, LockUnavailableError, or
 *   the signal's reason
 */
export function acquireSlotLock(
  config: ResolvedSlotLock,
  adapter: string,
  options: AcquireOptions = {},
): Promise<LockAcquisition> {
  const name = validateAdapterName(adapter);
  const paths = Array.from({ length: config.maxSlots }, (_, slot) => slotLockPath(config, name, slot));
  return acquire('slot', name, paths, config, options);
}

/**
 * Takes the scan lock of `adapter` (one exclusive file), polling until it frees or the timeout.
 * A `timeoutMs` of 0 is exactly one try.
 * @throws as {@link acquireSlotLock}
 */
export function acquireScanLock(
  config: ResolvedScanLock,
  adapter: string,
  options: AcquireOptions = {},
): Promise<LockAcquisition> {
  const name = validateAdapterName(adapter);
  return acquire('scan', name, [scanLockPath(config, name)], config, options);
}
