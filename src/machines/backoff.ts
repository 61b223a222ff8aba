/**
 * When `backoff` does not wait before the next attempt: pure functions of the machine's context,
 * used by the connection machine's named guards.
 *
 * The wait per failure class (docs/errors.md, {@link ConnectionContext.backoffMs}) is for failures whose
 * end BlueZ does not announce: the adapter or the device needs a moment. Where BlueZ itself has
 * already given the answer the wait would be for, or the next attempt does not go where the wait
 * was meant to help, it only makes the connection later, so `backoff` goes on to the next attempt at once (an eventless
transition, no timer):
 *
 * - {@link linkConfirmedDown}: an RF abort after which BlueZ showed Connected=false;
 * - {@link staleConnectCancelledFirst}: InProgress from a stale pending connect that the next pass
 *   cancels with a Disconnect before it connects;
 * - {@link nextAdapterHasFreeSlot}: out of slots, and the next attempt goes to another adapter that
 *   has one.
 */
import type { ConnectionContext, FailureCause } from './connection-contracts.js';

function lastCause(context: ConnectionContext): FailureCause | null {
  return context.attempts[context.attempts.length - 1]?.cause ?? null;
}

/**
 * An RF abort (`aborted`) after which BlueZ showed Connected=false: the link that briefly came up
 * is gone, so a retry cannot collide with it, and waiting longer tells nothing new. bluetoothd
 * signals Connected=false when the kernel reports the disconnection (src/device.c
 * device_remove_connection); the connect actor waits for it before it rejects.
 */
export function linkConfirmedDown(context: ConnectionContext): boolean {
  const cause = lastCause(context);
  return cause?.class === 'aborted' && cause.linkDownSeen === true;
}

/**
 * InProgress from a pending connect BlueZ still holds: the next pass starts by cancelling it
 * (`cancelling-stale-connect`, a Disconnect, which bluetoothd answers after dropping the pending
 * connect), so nothing is gained by waiting for it first.
 */
export function staleConnectCancelledFirst(context: ConnectionContext): boolean {
  return lastCause(context)?.class === 'inProgress' && context.staleInProgress;
}

/**
 * The last attempt was refused for lack of connection slots and the next one goes to `next`,
 * another adapter with a free slot. The out-of-slots wait is for the full controller to free a
 * slot; an attempt on another controller does not need it. A pool assigns only an adapter with a
 * free slot under the limit in force (its rotation requeues the device otherwise). Without a pool,
 * the configured adapter `next` counts as free unless its own latest attempt in this run was
 * refused for lack of slots too: then both are full and the wait applies, so two full adapters
 * are never retried back to back.
 */
export function nextAdapterHasFreeSlot(context: ConnectionContext, next: string | null): boolean {
  if (lastCause(context)?.class !== 'outOfSlots') return false;
  if (next === null || next === context.adapter) return false;
  if (context.pooled) return true;
  const lastOnNext = [...context.attempts].reverse().find((a) => a.adapter === next);
  return lastOnNext?.cause?.class !== 'outOfSlots';
}
