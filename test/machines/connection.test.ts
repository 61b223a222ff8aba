/**
 * The connection machine with scripted actors and fake timers: every workaround as a state path.
 * (The same paths run against the simulator in test/connection/.)
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createActor, fromPromise, setup, type AnyActorRef } from 'xstate';
import {
  AbortedError,
  ConnectionFailedError,
  DBusTimeoutError,
  InProgressError,
  OutOfSlotsError,
  ValidationError,
  AdapterError,
} from '../../src/bluez/errors.js';
import { connectionMachine } from '../../src/machines/connection.js';
import { PROFILE_BATTERY, PROFILE_ON_DEMAND } from '../../src/machines/profiles.js';
import { baseInput, fail, ok, startScripted, type Harness } from './scripted-actors.js';

const HAPPY = ['idle', 'locking', 'clearing-stale', 'connecting', 'validating', 'connected'];
const rfAbort = () =>
  new AbortedError('le-connection-abort-by-local', { dbusName: 'org.bluez.Error.Failed' });

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function finalError(h: Harness): Error {
  const snap = h.actor.getSnapshot();
  expect(snap.status).toBe('done');
  return snap.output!.error;
}

describe('connection machine (scripted actors)', () => {
  it('connects on the first attempt through every named step and releases the lock once connected', async () => {
    const h = startScripted(baseInput());
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connected');
    expect(h.states).toEqual(HAPPY);
    const ctx = h.actor.getSnapshot().context;
    expect(ctx.attempts).toHaveLength(1);
    expect(ctx.attempts[0]).toMatchObject({ number: 1, adapter: 'hci0', outcome: 'connected', cause: null });
    expect(h.releasedLeases).toContain('lease-1');
    expect(ctx.lease).toBeNull();
    expect(h.ledgerChanges).toEqual([{ kind: 'success', adapter: 'hci0' }]);
    h.actor.stop();
  });

  it('three RF aborts then success: each abort is counted, escalated and backed off, the fourth attempt connects', async () => {
    const h = startScripted(baseInput({ maxAttempts: 4 }), {
      connectWithDeadline: [fail(rfAbort()), fail(rfAbort()), fail(rfAbort()), ok()],
    });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connected');
    const retry = ['escalating', 'backoff', 'locking', 'clearing-stale', 'connecting'];
    expect(h.states).toEqual([
      'idle',
      'locking',
      'clearing-stale',
      'connecting',
      ...retry,
      ...retry,
      ...retry,
      'validating',
      'connected',
    ]);
    const attempts = h.actor.getSnapshot().context.attempts;
    expect(attempts.map((a) => a.cause?.class ?? a.outcome)).toEqual([
      'aborted',
      'aborted',
      'aborted',
      'connected',
    ]);
    // SPEC §6 default escalation on one adapter: diagnose at 1, rotate impossible → diagnose, then clear at 4 (not reached).
    expect(attempts.slice(0, 3).map((a) => a.escalation)).toEqual(['diagnose', 'diagnose', 'diagnose']);
    h.actor.stop();
  });

  it('exhausted attempts end in failed with a ConnectionFailedError listing each cause and adapter', async () => {
    const h = startScripted(baseInput({ maxAttempts: 3, adapters: ['hci0', 'hci1'] }), {
      connectWithDeadline: [
        fail(rfAbort()),
        fail(new OutOfSlotsError('connection slot', { adapter: 'hci1' })),
        fail(
          new InProgressError('Operation already in progress', { dbusName: 'org.bluez.Error.InProgress' }),
        ),
      ],
    });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.actor.getSnapshot().status === 'done');
    expect(h.states.at(-2)).toBe('escalating');
    expect(h.states.at(-1)).toBe('failed');
    const error = finalError(h);
    expect(error).toBeInstanceOf(ConnectionFailedError);
    const failed = error as ConnectionFailedError;
    expect(failed.attempts.map((a) => [a.attempt, a.adapter, a.errorClass])).toEqual([
      [1, 'hci0', 'aborted'],
      [2, 'hci0', 'outOfSlots'],
      [3, 'hci1', 'inProgress'],
    ]);
    expect(failed.message).toMatch(/#1 on hci0: aborted/);
    expect(failed.message).toMatch(/#3 on hci1: inProgress/);
    expect(h.releasedLeases).toContain('lease-1');
  });

  it('phantom without closeInactiveConnections is reported and left alone, every attempt', async () => {
    const phantom = ok({ known: true, connected: true, servicesResolved: false });
    const h = startScripted(baseInput({ maxAttempts: 2 }), {}, { inspectDevice: phantom });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.actor.getSnapshot().status === 'done');
    expect(h.states).toEqual([
      'idle',
      'locking',
      'clearing-stale',
      'phantom',
      'escalating',
      'backoff',
      'locking',
      'clearing-stale',
      'phantom',
      'escalating',
      'failed',
    ]);
    expect(h.callsTo('removePhantom')).toHaveLength(0);
    expect(h.callsTo('connectWithDeadline')).toHaveLength(0);
    expect(h.callsTo('verifiedDisconnect')).toHaveLength(0);
    expect(h.emitted.filter((e) => e.type === 'phantom-left-alone')).toHaveLength(2);
    expect(finalError(h).message).toMatch(/phantom/);
    // The final error keeps the real cause of each attempt.
    const failed = finalError(h) as ConnectionFailedError;
    expect(failed.attempts.map((a) => a.errorClass)).toEqual(['phantom', 'phantom']);
    expect(failed.errorClass).toBe('phantom');
    expect(failed.advice).toMatch(/closeInactiveConnections/);
  });

  it('attempts that all fail validation: the ConnectionFailedError lists them as validation, not other', async () => {
    const invalid = fail(new ValidationError('no GATT services after late-GATT retries'));
    const h = startScripted(baseInput({ maxAttempts: 2 }), {}, { validateOnce: invalid });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.actor.getSnapshot().status === 'done');
    const failed = finalError(h) as ConnectionFailedError;
    expect(failed).toBeInstanceOf(ConnectionFailedError);
    expect(failed.attempts.map((a) => [a.attempt, a.errorClass, a.code])).toEqual([
      [1, 'validation', 'VALIDATION_FAILED'],
      [2, 'validation', 'VALIDATION_FAILED'],
    ]);
    expect(failed.errorClass).toBe('validation');
    expect(failed.advice).toMatch(/lateGattDelaysMs/);
  });

  it('phantom with closeInactiveConnections is cleared and the device connects', async () => {
    const h = startScripted(baseInput({ closeInactiveConnections: true }), {
      inspectDevice: [ok({ known: true, connected: true, servicesResolved: false })],
    });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connected');
    expect(h.states).toEqual([
      'idle',
      'locking',
      'clearing-stale',
      'phantom',
      'connecting',
      'validating',
      'connected',
    ]);
    expect(h.callsTo('removePhantom')[0]?.input).toEqual({ address: 'AA:BB:CC:DD:EE:01', adapter: 'hci0' });
    h.actor.stop();
  });

  it('a healthy connection already up (another caller of this process made it) is adopted, not reconnected', async () => {
    const h = startScripted(baseInput(), {
      inspectDevice: [ok({ known: true, connected: true, servicesResolved: true })],
    });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connected');
    expect(h.states).toEqual(['idle', 'locking', 'clearing-stale', 'validating', 'connected']);
    expect(h.callsTo('connectWithDeadline')).toHaveLength(0);
    expect(h.actor.getSnapshot().context.attempts[0]?.adopted).toBe(true);
    h.actor.stop();
  });

  it('stale InProgress is cancelled before the next attempt, which connects', async () => {
    const h = startScripted(baseInput(), {
      connectWithDeadline: [fail(new InProgressError('Operation already in progress')), ok()],
    });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connected');
    expect(h.states).toEqual([
      'idle',
      'locking',
      'clearing-stale',
      'connecting',
      'escalating',
      'backoff',
      'locking',
      'clearing-stale',
      'connecting',
      'validating',
      'connected',
    ]);
    expect(h.callsTo('cancelStalePendingConnect')).toHaveLength(1);
    // The stale connect is cancelled on the adapter the failing attempt used.
    expect(h.callsTo('cancelStalePendingConnect')[0]?.input).toEqual({
      address: 'AA:BB:CC:DD:EE:01',
      adapter: 'hci0',
    });
    h.actor.stop();
  });

  it('a device search the attempt deadline ends is notFound (no Connect was sent, nothing to tear down), not noReply', async () => {
    const h = startScripted(baseInput({ attemptTimeoutMs: 5000 }), { findDevice: ['hang', ok()] });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connected');
    expect(h.states).toEqual([
      'idle',
      'locking',
      'clearing-stale',
      'connecting',
      'escalating',
      'backoff',
      'locking',
      'clearing-stale',
      'connecting',
      'validating',
      'connected',
    ]);
    const [hung] = h.callsTo('findDevice');
    expect(hung?.aborted).toBe(true);
    expect(h.callsTo('connectWithDeadline')).toHaveLength(1);
    expect(h.callsTo('verifiedDisconnect')).toHaveLength(0);
    const first = h.actor.getSnapshot().context.attempts[0];
    expect(first?.cause).toMatchObject({ class: 'notFound', code: 'DEVICE_NOT_FOUND' });
    h.actor.stop();
  });

  it('a Connect that never replies ends at the per-attempt deadline, the pending connect is torn down, the next attempt proceeds', async () => {
    const h = startScripted(baseInput({ attemptTimeoutMs: 5000 }), { connectWithDeadline: ['hang', ok()] });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connected');
    expect(h.states).toEqual([
      'idle',
      'locking',
      'clearing-stale',
      'connecting',
      'disconnecting',
      'escalating',
      'backoff',
      'locking',
      'clearing-stale',
      'connecting',
      'validating',
      'connected',
    ]);
    const [hung] = h.callsTo('connectWithDeadline');
    expect(hung?.aborted).toBe(true);
    expect(h.callsTo('verifiedDisconnect')[0]?.input).toMatchObject({
      adapter: 'hci0',
      reason: 'attempt-deadline',
    });
    const first = h.actor.getSnapshot().context.attempts[0];
    expect(first?.cause).toMatchObject({ class: 'noReply', code: 'ATTEMPT_DEADLINE' });
    h.actor.stop();
  });

  it('empty GATT fails validation, the link is torn down, the failure counts for escalation, a new attempt connects', async () => {
    const h = startScripted(baseInput(), {
      validateOnce: [fail(new ValidationError('no GATT services after late-GATT retries'))],
    });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connected');
    expect(h.states).toEqual([
      'idle',
      'locking',
      'clearing-stale',
      'connecting',
      'validating',
      'disconnecting',
      'escalating',
      'backoff',
      'locking',
      'clearing-stale',
      'connecting',
      'validating',
      'connected',
    ]);
    expect(h.callsTo('verifiedDisconnect')[0]?.input).toMatchObject({ reason: 'validation-failed' });
    expect(h.ledgerChanges).toEqual([
      { kind: 'failure', adapter: 'hci0', failureClass: 'validation' },
      { kind: 'success', adapter: 'hci0' },
    ]);
    h.actor.stop();
  });

  it('CANCEL while connecting tears the half-open link down on the adapter in use and ends with AbortError, not a failed attempt', async () => {
    const h = startScripted(baseInput({ adapters: ['hci1'] }), { connectWithDeadline: ['hang'] });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connecting');
    h.actor.send({ type: 'CANCEL', reason: 'aborted' });
    await h.runUntil(() => h.actor.getSnapshot().status === 'done');
    expect(h.states).toEqual(['idle', 'locking', 'clearing-stale', 'connecting', 'disconnecting', 'failed']);
    const error = finalError(h);
    expect(error.name).toBe('AbortError');
    expect(h.callsTo('connectWithDeadline')[0]?.aborted).toBe(true);
    expect(h.callsTo('verifiedDisconnect')[0]?.input).toMatchObject({ adapter: 'hci1', reason: 'cancelled' });
    expect(h.actor.getSnapshot().context.attempts.map((a) => a.outcome)).toEqual(['cancelled']);
    expect(h.ledgerChanges).toEqual([]);
    expect(h.releasedLeases).toContain('lease-1');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('CANCEL while waiting for the device lock fails at once with TimeoutError and touches no link', async () => {
    const h = startScripted(baseInput(), { acquireDeviceLock: ['hang'] });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'locking');
    h.actor.send({ type: 'CANCEL', reason: 'timed-out' });
    await h.runUntil(() => h.actor.getSnapshot().status === 'done');
    expect(h.states).toEqual(['idle', 'locking', 'failed']);
    expect(finalError(h).name).toBe('TimeoutError');
    expect(h.callsTo('acquireDeviceLock')[0]?.aborted).toBe(true);
    expect(h.callsTo('verifiedDisconnect')).toHaveLength(0);
  });

  it('CANCEL during backoff after a failed Connect ends without waiting for the backoff timer', async () => {
    const h = startScripted(baseInput({ backoffMs: { aborted: 60_000 } }), {
      connectWithDeadline: [fail(rfAbort())],
    });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'backoff');
    h.actor.send({ type: 'CANCEL', reason: 'aborted' });
    await h.runUntil(() => h.actor.getSnapshot().status === 'done', 1000);
    expect(h.states.at(-1)).toBe('failed');
    expect(finalError(h).name).toBe('AbortError');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('two adapters: the second failure rotates to hci1 (no pool), and the attempt there connects', async () => {
    const h = startScripted(baseInput({ adapters: ['hci0', 'hci1'] }), {
      connectWithDeadline: [fail(rfAbort()), fail(rfAbort()), ok()],
    });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connected');
    const attempts = h.actor.getSnapshot().context.attempts;
    expect(attempts.map((a) => [a.adapter, a.escalation])).toEqual([
      ['hci0', 'diagnose'],
      ['hci0', 'rotate'],
      ['hci1', null],
    ]);
    h.actor.stop();
  });

  it('out of slots rotates at once when another adapter exists', async () => {
    const h = startScripted(baseInput({ adapters: ['hci0', 'hci1'], backoffMs: { outOfSlots: 10 } }), {
      connectWithDeadline: [fail(new OutOfSlotsError('No available connection slot')), ok()],
    });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connected');
    expect(h.actor.getSnapshot().context.attempts.map((a) => a.adapter)).toEqual(['hci0', 'hci1']);
    h.actor.stop();
  });

  it('battery profile resets the adapter at 6 failures; a failed reset still starts the cooldown', async () => {
    const noReply = () => new DBusTimeoutError('org.bluez.Device1.Connect', '/org/bluez/hci0/dev_AA', 10);
    const h = startScripted(
      baseInput({ maxAttempts: 8, escalation: PROFILE_BATTERY, backoffMs: { noReply: 10 } }),
      { resetAdapter: [fail(new AdapterError('power cycle not verified', { adapter: 'hci0' }))] },
      { connectWithDeadline: fail(noReply()) },
    );
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.actor.getSnapshot().status === 'done');
    expect(h.callsTo('resetAdapter')).toHaveLength(1);
    const escalations = h.actor.getSnapshot().context.attempts.map((a) => a.escalation);
    // 1 diagnose, 2-3 diagnose (one adapter: nothing to rotate to), 4-5 clear, 6 reset, then the
    // counter restarts and the cooldown blocks another reset.
    expect(escalations).toEqual([
      'diagnose',
      'diagnose',
      'diagnose',
      'clear',
      'clear',
      'reset',
      'diagnose',
      null,
    ]);
    expect(h.states).toContain('resetting');
    const ledger = h.actor.getSnapshot().context.ledger;
    expect(ledger.lastResetAt['hci0']).toBeTypeOf('number');
    expect(h.ledgerChanges.filter((c) => c.kind === 'reset')).toHaveLength(1);
    // "clear" runs before the following attempt: RemoveDevice + rediscovery, as a named step.
    expect(h.callsTo('clearDeviceCache')).toHaveLength(2);
  });

  it('onDemand profile with a parent pool asks the pool to rotate and uses the adapter it assigns', async () => {
    const requests: unknown[] = [];
    const h = startScripted(baseInput({ pooled: true, adapters: ['hci0'] })); // only used for the provided logic
    h.actor.stop();
    // A minimal parent that answers rotation requests, standing in for the adapter pool.
    const logic = (h.actor.logic as typeof connectionMachine).provide({
      actors: {
        connectWithDeadline: fromPromise(async ({ input }) => {
          if ((input as { adapter: string }).adapter === 'hci0') throw rfAbort();
        }),
      },
    });
    const parent = setup({ actors: { device: logic } }).createMachine({
      invoke: {
        id: 'device',
        src: 'device',
        input: baseInput({ pooled: true, adapters: ['hci0'], escalation: PROFILE_ON_DEMAND }),
      },
      on: {
        ROTATION_REQUESTED: {
          actions: ({ event, self }) => {
            requests.push(event);
            const child = self.getSnapshot().children['device'] as AnyActorRef;
            child.send({ type: 'ADAPTER_ASSIGNED', adapter: 'hci7' });
          },
        },
      },
    });
    const actor = createActor(parent).start();
    const child = actor.getSnapshot().children['device'] as AnyActorRef;
    child.send({ type: 'CONNECT' });
    for (let i = 0; i < 200 && child.getSnapshot().value !== 'connected'; i++)
      await vi.advanceTimersByTimeAsync(10);
    expect(child.getSnapshot().value).toBe('connected');
    expect(requests).toEqual([
      {
        type: 'ROTATION_REQUESTED',
        address: 'AA:BB:CC:DD:EE:01',
        fromAdapter: 'hci0',
        failureClass: 'aborted',
      },
    ]);
    expect(child.getSnapshot().context.attempts.map((a: { adapter: string }) => a.adapter)).toEqual([
      'hci0',
      'hci7',
    ]);
    actor.stop();
  });

  it('a pooled actor reports to its parent: failed attempts, connected, link lost, reset started/ended, idle after a disconnect', async () => {
    const input = baseInput({
      pooled: true,
      adapters: ['hci0'],
      escalation: { ...PROFILE_BATTERY, resetAfter: 2, resetCooldownMs: 0 },
      backoffMs: { aborted: 10 },
    });
    const h = startScripted(input, { connectWithDeadline: [fail(rfAbort()), fail(rfAbort()), ok(), ok()] });
    h.actor.stop();
    const reports: { type: string }[] = [];
    const parent = setup({ actors: { device: h.actor.logic as typeof connectionMachine } }).createMachine({
      invoke: { id: 'device', src: 'device', input },
      on: { '*': { actions: ({ event }) => reports.push(event) } },
    });
    const actor = createActor(parent).start();
    const child = actor.getSnapshot().children['device'] as AnyActorRef;
    const until = async (check: () => boolean) => {
      for (let i = 0; i < 500 && !check(); i++) await vi.advanceTimersByTimeAsync(10);
      expect(check()).toBe(true);
    };
    child.send({ type: 'CONNECT' });
    await until(() => child.getSnapshot().value === 'connected');
    h.loseLink('Connected=false');
    await until(() => child.getSnapshot().value === 'idle');
    child.send({ type: 'CONNECT' });
    await until(() => child.getSnapshot().value === 'connected');
    child.send({ type: 'DISCONNECT' });
    await until(() => child.getSnapshot().value === 'idle');
    const device = { address: 'AA:BB:CC:DD:EE:01', adapter: 'hci0' };
    expect(reports.filter((e) => !e.type.startsWith('xstate.'))).toEqual([
      { type: 'CHILD_ATTEMPT_FAILED', ...device, failureClass: 'aborted' },
      { type: 'CHILD_ATTEMPT_FAILED', ...device, failureClass: 'aborted' },
      // The second failure reaches resetAfter: the ladder runs (the pool spares the adapter meanwhile).
      { type: 'CHILD_RESETTING', ...device, running: true },
      { type: 'CHILD_RESETTING', ...device, running: false },
      { type: 'CHILD_CONNECTED', ...device },
      { type: 'CHILD_LINK_LOST', ...device, reason: 'Connected=false' },
      { type: 'CHILD_CONNECTED', ...device },
      { type: 'CHILD_IDLE', ...device },
    ]);
    actor.stop();
  });

  it('a standalone actor sends its parent nothing, whatever happens', async () => {
    const input = baseInput({ adapters: ['hci0'], backoffMs: { aborted: 10 } });
    const h = startScripted(input, { connectWithDeadline: [fail(rfAbort()), ok()] });
    h.actor.stop();
    const received: { type: string }[] = [];
    const parent = setup({ actors: { device: h.actor.logic as typeof connectionMachine } }).createMachine({
      invoke: { id: 'device', src: 'device', input },
      on: { '*': { actions: ({ event }) => received.push(event) } },
    });
    const actor = createActor(parent).start();
    const child = actor.getSnapshot().children['device'] as AnyActorRef;
    child.send({ type: 'CONNECT' });
    for (let i = 0; i < 500 && child.getSnapshot().value !== 'connected'; i++)
      await vi.advanceTimersByTimeAsync(10);
    expect(child.getSnapshot().value).toBe('connected');
    h.loseLink();
    await vi.advanceTimersByTimeAsync(10);
    expect(child.getSnapshot().value).toBe('idle');
    expect(received).toEqual([]);
    actor.stop();
  });

  it('QUEUED_FOR_SLOT after a refused link: the attempt is torn down, the lock released, nothing runs while waiting; ADAPTER_ASSIGNED starts a fresh run there', async () => {
    const h = startScripted(baseInput({ backoffMs: { outOfSlots: 60_000 } }), {
      connectWithDeadline: [fail(new OutOfSlotsError('No available connection slot')), ok()],
    });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'backoff');
    h.actor.send({ type: 'QUEUED_FOR_SLOT', reason: 'hci0 has no free slot' });
    await h.runUntil(() => h.state() === 'waiting-for-slot', 1000);
    // Our Connect may have left a pending connect: cancelled on the adapter in use.
    expect(h.states.slice(-3)).toEqual(['backoff', 'disconnecting', 'waiting-for-slot']);
    expect(h.callsTo('verifiedDisconnect')[0]?.input).toMatchObject({ adapter: 'hci0', reason: 'requeued' });
    expect(h.releasedLeases).toContain('lease-1');
    expect(h.actor.getSnapshot().context.lease).toBeNull();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(h.state()).toBe('waiting-for-slot');

    h.actor.send({ type: 'ADAPTER_ASSIGNED', adapter: 'hci1' });
    await h.runUntil(() => h.state() === 'connected');
    const context = h.actor.getSnapshot().context;
    expect(context.attempts.map((a) => [a.number, a.adapter, a.outcome])).toEqual([[1, 'hci1', 'connected']]);
    // A refusal for lack of slots is not a failure streak of hci0 (it would push a full adapter
    // toward a reset); the shared policy hears of it with its class and leaves it out too.
    expect(context.ledger.failures['hci0'] ?? 0).toBe(0);
    expect(h.ledgerChanges[0]).toEqual({ kind: 'failure', adapter: 'hci0', failureClass: 'outOfSlots' });
    h.actor.stop();
  });

  it('out-of-slots refusals never reset the adapter, even with reset at 1 failure: one adapter and no pool retries after the out-of-slots backoff until the attempts run out', async () => {
    const refused = () =>
      new OutOfSlotsError('No available connection slot', {
        adapter: 'hci0',
        dbusName: 'org.bluez.Error.Failed',
      });
    const h = startScripted(
      baseInput({
        maxAttempts: 5,
        escalation: { ...PROFILE_BATTERY, resetAfter: 1, clearAfter: 1, resetCooldownMs: 0 },
        backoffMs: { outOfSlots: 10 },
      }),
      {},
      { connectWithDeadline: fail(refused()) },
    );
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.actor.getSnapshot().status === 'done');
    expect(h.states).not.toContain('resetting');
    expect(h.callsTo('resetAdapter')).toEqual([]);
    expect(h.callsTo('clearDeviceCache')).toEqual([]);
    const context = h.actor.getSnapshot().context;
    expect(context.attempts.map((a) => a.escalation)).toEqual(['retry', 'retry', 'retry', 'retry', null]);
    expect(context.ledger.failures['hci0'] ?? 0).toBe(0);
    expect(finalError(h)).toBeInstanceOf(ConnectionFailedError);
  });

  it('QUEUED_FOR_SLOT while connecting ends the attempt as requeued, not failed, after cancelling the pending connect', async () => {
    const h = startScripted(baseInput({ attemptTimeoutMs: 60_000 }), { connectWithDeadline: ['hang'] });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connecting');
    h.actor.send({ type: 'QUEUED_FOR_SLOT', reason: 'hci0 removed' });
    await h.runUntil(() => h.state() === 'waiting-for-slot', 1000);
    expect(h.callsTo('connectWithDeadline')[0]?.aborted).toBe(true);
    expect(h.callsTo('verifiedDisconnect')[0]?.input).toMatchObject({ reason: 'requeued' });
    expect(h.actor.getSnapshot().context.attempts.map((a) => a.outcome)).toEqual(['requeued']);
    expect(h.ledgerChanges).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
    h.actor.stop();
  });

  it('QUEUED_FOR_SLOT while tearing down a failed validation waits after the teardown instead of escalating', async () => {
    const g = startScripted(baseInput(), {
      validateOnce: [fail(new ValidationError('no GATT services'))],
    });
    // The pool's answer arrives while the verified disconnect runs.
    let sent = false;
    g.actor.subscribe((snapshot) => {
      if (sent || snapshot.value !== 'disconnecting') return;
      sent = true;
      g.actor.send({ type: 'QUEUED_FOR_SLOT', reason: 'hci0 has no free slot' });
    });
    g.actor.send({ type: 'CONNECT' });
    await g.runUntil(() => g.state() === 'waiting-for-slot', 1000);
    expect(g.states.slice(-3)).toEqual(['validating', 'disconnecting', 'waiting-for-slot']);
    expect(g.states).not.toContain('escalating');
    // The validation failure itself still counts.
    expect(g.actor.getSnapshot().context.attempts[0]).toMatchObject({
      outcome: 'failed',
      cause: { class: 'validation' },
    });
    g.actor.stop();
  });

  it('CANCEL while waiting for a slot ends at once with AbortError', async () => {
    const h = startScripted(baseInput(), { connectWithDeadline: ['hang'] });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connecting');
    h.actor.send({ type: 'QUEUED_FOR_SLOT', reason: 'hci0 removed' });
    await h.runUntil(() => h.state() === 'waiting-for-slot', 1000);
    h.actor.send({ type: 'CANCEL', reason: 'aborted' });
    expect(h.states.slice(-2)).toEqual(['waiting-for-slot', 'failed']);
    expect(finalError(h).name).toBe('AbortError');
    expect(h.callsTo('verifiedDisconnect')).toHaveLength(1);
  });

  it('link loss while connected goes back to idle, the link watcher ends; CONNECT starts over', async () => {
    const h = startScripted(baseInput());
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connected');
    expect(h.liveWatchers).toBe(1);
    h.loseLink('Connected=false');
    await h.runUntil(() => h.state() === 'idle');
    expect(h.liveWatchers).toBe(0);
    expect(h.emitted.some((e) => e.type === 'link-lost')).toBe(true);
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connected');
    expect(h.actor.getSnapshot().context.attempts).toHaveLength(1);
    h.actor.stop();
  });

  it('DISCONNECT from connected runs the verified disconnect and returns to idle', async () => {
    const h = startScripted(baseInput());
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connected');
    h.actor.send({ type: 'DISCONNECT' });
    await h.runUntil(() => h.state() === 'idle');
    expect(h.states.slice(-3)).toEqual(['connected', 'disconnecting', 'idle']);
    expect(h.callsTo('verifiedDisconnect')[0]?.input).toMatchObject({ reason: 'requested' });
    h.actor.stop();
  });

  it('a degraded lock (timed out) is reported and the attempt goes on unlocked', async () => {
    const h = startScripted(baseInput(), {
      acquireDeviceLock: [ok({ lease: 'unlocked-1', slotLease: null, degraded: true, waitedMs: 15000 })],
    });
    h.actor.send({ type: 'CONNECT' });
    await h.runUntil(() => h.state() === 'connected');
    expect(h.emitted.map((e) => e.type)).toContain('lock-degraded');
    h.actor.stop();
  });

  it('without provided actors the machine says which actor is missing', async () => {
    const actor = createActor(connectionMachine, { input: baseInput({ maxAttempts: 1 }) });
    actor.subscribe({ error: () => {} });
    actor.start();
    actor.send({ type: 'CONNECT' });
    await vi.advanceTimersByTimeAsync(10);
    const snap = actor.getSnapshot();
    expect(snap.status).toBe('done');
    expect(snap.context.attempts[0]?.cause?.message).toMatch(/acquireDeviceLock" is not provided/);
  });
});
