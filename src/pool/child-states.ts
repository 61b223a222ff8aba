/**
 * Tells the pool machine what its children do. The connection machine reports only rotation
 * requests to its parent (sendParent); its state changes — connected, link lost back to idle — are
 * read here from each child's snapshots and sent to the pool as CHILD_STATE events.
 */
import type { AnyActorRef, Subscription } from 'xstate';
import type { ConnectionAttempt, FailureClass } from '../machines/connection-contracts.js';
import type { ChildStateEvent } from '../machines/adapter-pool-steps.js';
import { topLevelState } from '../machines/state-trail.js';

interface ChildSnapshotLike {
  status: string;
  value: unknown;
  context?: { adapter?: string; attempts?: readonly ConnectionAttempt[] };
  output?: { error?: unknown };
}

/** The address of a pool child id (`device:AA:BB:…#n`), or undefined. */
export function addressOfChild(childId: string): string | undefined {
  const m = /^device:([0-9A-F:]{17})#\d+$/.exec(childId);
  return m?.[1];
}

/** What the forwarder saw last of one child. */
interface Tracked {
  subscription: Subscription;
  state: string;
  failures: number;
}

/**
 * Subscribes to every `device:*` child of `pool` as it appears and forwards its state changes.
 * `onChildEnded` receives a child's final output error (the pool itself handles the done event).
 * Returns the function that ends every subscription.
 */
export function forwardChildStates(
  pool: AnyActorRef,
  onChildEnded: (address: string, childId: string, error: unknown) => void = () => {},
): () => void {
  const tracked = new Map<string, Tracked>();
  let stopped = false;

  const report = (childId: string, address: string, snapshot: ChildSnapshotLike): void => {
    const entry = tracked.get(childId);
    if (entry === undefined || stopped) return;
    if (snapshot.status === 'done') {
      onChildEnded(address, childId, snapshot.output?.error);
      return;
    }
    if (snapshot.status !== 'active') return;
    const state = topLevelState(snapshot.value as Parameters<typeof topLevelState>[0]);
    const attempts = snapshot.context?.attempts ?? [];
    const failed = attempts.filter((a) => a.outcome === 'failed');
    let failedAttempt: ChildStateEvent['failedAttempt'] = null;
    if (failed.length > entry.failures) {
      const last = failed[failed.length - 1];
      if (last?.cause) failedAttempt = { adapter: last.adapter, class: last.cause.class as FailureClass };
    }
    entry.failures = failed.length;
    if (state === entry.state && failedAttempt === null) return;
    entry.state = state;
    pool.send({
      type: 'CHILD_STATE',
      address,
      childId,
      state,
      adapter: snapshot.context?.adapter ?? '',
      failedAttempt,
    } satisfies ChildStateEvent);
  };

  const track = (childId: string, child: AnyActorRef): void => {
    const address = addressOfChild(childId);
    if (address === undefined || tracked.has(childId)) return;
    const entry: Tracked = { subscription: { unsubscribe: () => {} }, state: '', failures: 0 };
    tracked.set(childId, entry);
    const forget = (): void => {
      entry.subscription.unsubscribe();
      tracked.delete(childId);
    };
    entry.subscription = child.subscribe({
      next: (s) => report(childId, address, s as ChildSnapshotLike),
      complete: forget,
      error: forget,
    });
    report(childId, address, child.getSnapshot() as ChildSnapshotLike);
  };

  const scan = (): void => {
    const children =
      (pool.getSnapshot() as { children?: Record<string, AnyActorRef | undefined> }).children ?? {};
    for (const [id, child] of Object.entries(children)) if (child !== undefined) track(id, child);
    for (const [id, entry] of tracked) {
      if (children[id] === undefined) {
        entry.subscription.unsubscribe();
        tracked.delete(id);
      }
    }
  };
  const poolSubscription = pool.subscribe({ next: scan });
  scan();

  return () => {
    stopped = true;
    poolSubscription.unsubscribe();
    for (const entry of tracked.values()) entry.subscription.unsubscribe();
    tracked.clear();
  };
}
