/**
 * `backoff` waits only where waiting can help (src/machines/backoff.ts), on the pure machine with
 * scripted actors and fake timers: the next attempt starts without any fake time passing when
 * BlueZ already gave the answer the wait is for, and waits the class's backoff otherwise.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createActor, setup, type AnyActorRef } from 'xstate';
import { AbortedError, InProgressError, OutOfSlotsError } from '../../src/bluez/errors.js';
import type { connectionMachine } from '../../src/machines/connection.js';
import { topLevelState } from '../../src/machines/state-trail.js';
import { baseInput, fail, ok, startScripted } from './scripted-actors.js';

const LONG = 60_000;
const backoffMs = { aborted: LONG, inProgress: LONG, outOfSlots: LONG };

/** An RF abort as the connect actor rejects it (the machine then waits for Connected=false). */
function rfAbort(): AbortedError {
  return new AbortedError('le-connection-abort-by-local', { dbusName: 'org.bluez.Error.Failed' });
}

/** Lets scripted actors settle without moving the fake clock. */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await vi.advanceTimersByTimeAsync(0);
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('backoff is skipped where BlueZ already answered', () => {
  it('RF abort with Connected=false seen: the next attempt starts at once, no timer', async () => {
    const h = startScripted(baseInput({ backoffMs }), {
      connectWithDeadline: [fail(rfAbort()), ok()],
      // BlueZ shows Connected=false (connecting.awaiting-link-down).
      waitLinkDown: [ok()],
    });
    h.actor.send({ type: 'CONNECT' });
    await settle();
    expect(h.state()).toBe('connected');
    expect(h.states).toContain('backoff');
    expect(h.callsTo('connectWithDeadline')).toHaveLength(2);
    expect(h.actor.getSnapshot().context.attempts[0]?.cause).toMatchObject({
      class: 'aborted',
      linkDownSeen: true,
    });
    h.actor.stop();
  });

  it('RF abort whose link BlueZ still showed up: the aborted backoff applies', async () => {
    const h = startScripted(baseInput({ backoffMs, disconnectTimeoutMs: 500 }), {
      connectWithDeadline: [fail(rfAbort()), ok()],
      // The link-down wait ends at its deadline with the link still up.
      waitLinkDown: ['hang'],
    });
    h.actor.send({ type: 'CONNECT' });
    await settle();
    expect(h.state()).toBe('connecting');
    await vi.advanceTimersByTimeAsync(500);
    await settle();
    expect(h.state()).toBe('backoff');
    // The backoff timer, and the run's overall deadline (none set: guarded off).
    expect(vi.getTimerCount()).toBe(2);
    await vi.advanceTimersByTimeAsync(LONG - 1);
    expect(h.state()).toBe('backoff');
    await vi.advanceTimersByTimeAsync(1);
    await settle();
    expect(h.state()).toBe('connected');
    h.actor.stop();
  });

  it('stale InProgress: the pending connect is cancelled at once, without the InProgress backoff', async () => {
    const h = startScripted(baseInput({ backoffMs }), {
      connectWithDeadline: [fail(new InProgressError('Operation already in progress')), ok()],
    });
    h.actor.send({ type: 'CONNECT' });
    await settle();
    expect(h.state()).toBe('connected');
    expect(h.callsTo('cancelStalePendingConnect')).toHaveLength(1);
  });
});

describe('out of slots: no backoff when the next attempt goes to another adapter with a free slot', () => {
  it('rotation to the next configured adapter starts at once; back to an adapter that refused too, it waits', async () => {
    const full = () => new OutOfSlotsError('No available connection slot');
    const h = startScripted(baseInput({ adapters: ['hci0', 'hci1'], backoffMs }), {
      connectWithDeadline: [fail(full()), fail(full()), ok()],
    });
    h.actor.send({ type: 'CONNECT' });
    await settle();
    // hci0 refused → hci1 at once; hci1 refused → hci0, which refused too: both full, so wait.
    expect(h.callsTo('connectWithDeadline').map((c) => (c.input as { adapter: string }).adapter)).toEqual([
      'hci0',
      'hci1',
    ]);
    expect(h.state()).toBe('backoff');
    await vi.advanceTimersByTimeAsync(LONG);
    await settle();
    expect(h.state()).toBe('connected');
    expect(h.actor.getSnapshot().context.attempts.map((a) => a.adapter)).toEqual(['hci0', 'hci1', 'hci0']);
    h.actor.stop();
  });

  it('pooled: the pool assigning another adapter ends the wait at once; the same adapter does not', async () => {
    const input = baseInput({ pooled: true, adapters: ['hci0'], backoffMs });
    const h = startScripted(input, {
      connectWithDeadline: [
        fail(new OutOfSlotsError('No available connection slot')),
        fail(new OutOfSlotsError('No available connection slot')),
        ok(),
      ],
    });
    h.actor.stop();
    const answers = ['hci0', 'hci1'];
    const parent = setup({ actors: { device: h.actor.logic as typeof connectionMachine } }).createMachine({
      invoke: { id: 'device', src: 'device', input },
      on: {
        ROTATION_REQUESTED: {
          actions: ({ self }) => {
            const child = self.getSnapshot().children['device'] as AnyActorRef;
            child.send({ type: 'ADAPTER_ASSIGNED', adapter: answers.shift() ?? 'hci1' });
          },
        },
      },
    });
    const actor = createActor(parent).start();
    const child = actor.getSnapshot().children['device'] as AnyActorRef;
    const state = () => topLevelState(child.getSnapshot().value);
    child.send({ type: 'CONNECT' });
    await settle();
    // First refusal: the pool answers with the same adapter; the out-of-slots wait runs.
    expect(state()).toBe('backoff');
    await vi.advanceTimersByTimeAsync(LONG);
    await settle();
    // Second refusal: the pool moves it to hci1, and the attempt there starts at once.
    expect(state()).toBe('connected');
    expect(
      (child.getSnapshot().context as { attempts: { adapter: string }[] }).attempts.map((a) => a.adapter),
    ).toEqual(['hci0', 'hci0', 'hci1']);
    actor.stop();
  });
});
