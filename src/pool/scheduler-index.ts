/**
 * An index of the delayed events each actor of an XState system has scheduled, so that stopping
 * one actor costs what that actor scheduled, not what the whole system has pending.
 *
 * XState 5's system scheduler cancels an actor's delayed events when the actor stops (every
 * invoked promise that settles, every state exit that stops an invoked actor) by walking every
 * delayed event of the system (`cancelAll` in xstate packages/core/src/system.ts). In the adapter
 * pool the system holds every device's connection actor, each with its attempt and overall
 * deadlines pending, so each of those stops walked O(devices) entries: a profile of 1000 devices
 * connecting spent 14 % of the pool's process there. The scheduler is part of the system's public
 * type (`ActorSystem.scheduler`); this wraps its `schedule` to remember the ids per source actor
 * and answers `cancelAll` with `cancel` of exactly those ids. `cancel` of an id whose event has
 * fired already changes nothing, so the result is the same as the walk's. The ids of `after`
 * transitions are fixed per state, so an actor's set stays as small as its chart's delays; it is
 * dropped when the actor stops.
 */
import type { ActorSystem, ActorSystemInfo, AnyActorRef } from 'xstate';

/** Installs the index on `system` (call before the root actor starts). */
export function indexScheduledEvents(system: Pick<ActorSystem<ActorSystemInfo>, 'scheduler'>): void {
  const { scheduler } = system;
  const schedule = scheduler.schedule.bind(scheduler);
  const cancel = scheduler.cancel.bind(scheduler);
  const ids = new WeakMap<AnyActorRef, Set<string>>();
  scheduler.schedule = (source, target, event, delay, id) => {
    // XState gives an id-less delayed event a random id; name it here so that it can be cancelled.
    const named = id ?? `scheduled.${Math.random().toString(36).slice(2)}`;
    let own = ids.get(source);
    if (own === undefined) {
      own = new Set();
      ids.set(source, own);
    }
    own.add(named);
    schedule(source, target, event, delay, named);
  };
  scheduler.cancelAll = (actorRef) => {
    const own = ids.get(actorRef);
    if (own === undefined) return;
    ids.delete(actorRef);
    for (const id of own) cancel(actorRef, id);
  };
}
