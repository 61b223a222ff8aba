/**
 * The cross-process half of the connection actor's `locking` state: a connection slot on the
 * attempt's adapter (src/lock), registered in the actor's {@link LeaseBook} so that every exit path
 * — the machine's release actions, or stopping the actor in any state — gives it back.
 */
import { acquireSlotLock } from '../lock/acquire.js';
import type { ResolvedSlotLock } from '../lock/config.js';
import type { LeaseBook } from './lease-book.js';

/** A slot taken (its lease), or a timeout that degrades to unlocked (`degraded`, no lease). */
export interface SlotOutcome {
  readonly slotLease: string | null;
  readonly degraded: boolean;
  readonly waitedMs: number;
}

/**
 * Waits (polling, cancellable) for a free slot on `adapter`.
 * @throws LockTimeoutError when strict, LockPathError / LockPermissionError / LockUnavailableError,
 *   or the signal's reason
 */
export async function takeSlot(
  config: ResolvedSlotLock,
  adapter: string,
  leases: LeaseBook,
  signal: AbortSignal,
): Promise<SlotOutcome> {
  const outcome = await acquireSlotLock(config, adapter, { signal });
  if (outcome.held === null) return { slotLease: null, degraded: true, waitedMs: outcome.waitedMs };
  if (signal.aborted) {
    outcome.held.release();
    throw signal.reason;
  }
  return {
    slotLease: leases.add(() => outcome.held.release()),
    degraded: false,
    waitedMs: outcome.held.waitedMs,
  };
}
