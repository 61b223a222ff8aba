/**
 * Model-based: paths generated with @xstate/graph reach every state and (with the edge extension
 * and the check below) every transition of the connection machine. Each path is replayed against
 * a running actor whose actors settle exactly as the path says; after every step the running
 * actor must be in the state the model predicted.
 */
import { beforeEach, afterEach, describe, expect, it, vi } from 'vitest';
import { createActor, fromCallback, fromPromise, setup, type AnyActorRef, type EventObject } from 'xstate';
import { connectionMachine } from '../../src/machines/connection.js';
import type { ConnectionInput } from '../../src/machines/connection-contracts.js';
import { createStateTrail } from '../../src/machines/state-trail.js';
import {
  MODEL_INPUTS,
  allTransitionKeys,
  expectedStates,
  generatePaths,
  serializeModelState,
  transitionKey,
  type ModelPath,
} from './connection-model.js';

const covered = new Set<string>();

interface Deferred {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

const visited = new Set<string>();

/** Replays one path; returns the states the running actor rested in. */
async function replay(input: ConnectionInput, path: ModelPath): Promise<string[]> {
  const pending = new Map<string, Deferred>();
  const watchers = new Set<(e: EventObject) => void>();
  const manual = (name: string) =>
    fromPromise<unknown, unknown>(
      ({ signal }) =>
        new Promise((resolve, reject) => {
          pending.set(name, { resolve, reject });
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
    );
  const names = [
    'acquireDeviceLock',
    'inspectDevice',
    'cancelStalePendingConnect',
    'clearDeviceCache',
    'clearPhantom',
    'connectWithDeadline',
    'validateWithLateGattRetry',
    'verifiedDisconnect',
    'resetAdapter',
  ];
  const logic = connectionMachine.provide({
    actors: {
      ...Object.fromEntries(names.map((n) => [n, manual(n)])),
      watchLink: fromCallback(({ sendBack }) => {
        const w = (e: EventObject) => sendBack(e as never);
        watchers.add(w);
        return () => watchers.delete(w);
      }),
    } as never,
  });
  const trail = createStateTrail();
  // A parent stands in for the pool so that `requestRotationFromPool` has somewhere to go.
  const parent = setup({ actors: { device: logic } }).createMachine({
    invoke: { id: 'device', src: 'device', input },
    on: { ROTATION_REQUESTED: {} },
  });
  const root = createActor(parent, { inspect: trail.inspect });
  root.subscribe({ error: () => {} });
  root.start();
  const device = root.getSnapshot().children['device'] as AnyActorRef;
  try {
    for (const step of path.steps.slice(1)) {
      const event = step.event as EventObject & { output?: unknown; error?: unknown };
      const done = /^xstate\.done\.actor\.(.+)$/.exec(event.type);
      const error = /^xstate\.error\.actor\.(.+)$/.exec(event.type);
      if (done?.[1]) {
        pending.get(done[1])?.resolve(event.output);
      } else if (error?.[1]) {
        pending.get(error[1])?.reject(event.error);
      } else if (event.type.startsWith('xstate.after.')) {
        await vi.advanceTimersToNextTimerAsync();
      } else if (event.type === 'LINK_LOST') {
        for (const w of watchers) w(event);
      } else {
        device.send(event);
      }
      await vi.advanceTimersByTimeAsync(0);
      expect(serializeModelState(device.getSnapshot())).toBe(serializeModelState(step.state));
    }
  } finally {
    for (const t of trail.transitions) covered.add(transitionKey(t));
    for (const st of trail.states) visited.add(st);
    root.stop();
  }
  expect(vi.getTimerCount()).toBe(0);
  return trail.settled;
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('connection machine, model-based (pure replay)', () => {
  for (const [name, input] of Object.entries(MODEL_INPUTS)) {
    it(`${name}: every generated path runs on the actor, which rests in exactly the states the model predicts`, async () => {
      const paths = generatePaths(input);
      expect(paths.length).toBeGreaterThan(10);
      for (const path of paths) {
        const settled = await replay(input, path);
        expect(settled).toEqual(expectedStates(path));
      }
    });
  }

  it('the paths reach every state of the machine (transient ones included)', () => {
    expect([...visited].sort()).toEqual([
      'backoff',
      'clearing-stale',
      'connected',
      'connecting',
      'disconnecting',
      'escalating',
      'failed',
      'idle',
      'locking',
      'phantom',
      'resetting',
      'validating',
    ]);
  });

  it('the paths take every transition of the machine (the library only guarantees state coverage)', () => {
    const missing = allTransitionKeys().filter((k) => !covered.has(k));
    expect(missing, `transitions never taken:\n${missing.join('\n')}`).toEqual([]);
    expect(covered.size).toBeGreaterThan(40);
  });
});
