/**
 * The scheduler index (src/pool/scheduler-index.ts): stopping an actor cancels exactly its own
 * delayed events, as XState's own walk over every pending event does, without the walk.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createActor, setup, spawnChild, stopChild } from 'xstate';
import { indexScheduledEvents } from '../../src/pool/scheduler-index.js';

const child = setup({}).createMachine({
  initial: 'waiting',
  states: { waiting: { after: { 1000: 'done' } }, done: {} },
});

const parent = setup({
  types: { events: {} as { type: 'STOP_ONE'; id: string } },
  actors: { child },
}).createMachine({
  // Three children with a timer each.
  entry: [
    spawnChild('child', { id: 'c1' }),
    spawnChild('child', { id: 'c2' }),
    spawnChild('child', { id: 'c3' }),
  ],
  on: { STOP_ONE: { actions: stopChild(({ event }) => event.id) } },
});

afterEach(() => vi.useRealTimers());

describe('indexScheduledEvents', () => {
  it('stopping one of three children clears its timer only; the others fire; stopping the root leaves no timer', () => {
    vi.useFakeTimers();
    const root = createActor(parent);
    indexScheduledEvents(root.system);
    root.start();
    expect(vi.getTimerCount()).toBe(3);
    root.send({ type: 'STOP_ONE', id: 'c2' });
    expect(vi.getTimerCount()).toBe(2);
    vi.advanceTimersByTime(1000);
    const children = root.getSnapshot().children;
    expect(Object.keys(children).sort()).toEqual(['c1', 'c3']);
    expect(children.c1?.getSnapshot().value).toBe('done');
    expect(children.c3?.getSnapshot().value).toBe('done');
    // Their timers fired: stopping them now cancels ids that are gone, which changes nothing.
    root.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a delayed event scheduled without an id is cancelled when its actor stops', () => {
    vi.useFakeTimers();
    const pinger = setup({ types: { events: {} as { type: 'PING' } } }).createMachine({
      entry: ({ system, self }) => system.scheduler.schedule(self, self, { type: 'PING' }, 5000, undefined),
    });
    const root = createActor(pinger);
    indexScheduledEvents(root.system);
    root.start();
    expect(vi.getTimerCount()).toBe(1);
    root.stop();
    expect(vi.getTimerCount()).toBe(0);
  });
});
