/**
 * Model-based: paths generated with @xstate/graph reach every state and (with the edge extension
 * and the check below) every transition of the connection machine. Each path is replayed against
 * a running actor whose actors settle exactly as the path says; after every step the running
 * actor must be in the state the model predicted.
 */
import { beforeEach, afterEach, describe, expect, it, vi } from 'vitest';
import {
  MODEL_INPUTS,
  allTransitionKeys,
  expectedStates,
  generatePaths,
  replayWithScriptedActors,
} from './connection-model.js';

const covered = new Set<string>();
const visited = new Set<string>();

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
        const run = await replayWithScriptedActors(input, path);
        for (const key of run.transitions) covered.add(key);
        for (const state of run.states) visited.add(state);
        expect(run.settled).toEqual(expectedStates(path));
      }
      // Hundreds of replays: a generous allowance on a loaded machine (nothing here is timed).
    }, 600_000);
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
      'waiting-for-slot',
    ]);
  });

  it('the paths take every transition of the machine (the library only guarantees state coverage)', () => {
    const missing = allTransitionKeys().filter((k) => !covered.has(k));
    expect(missing, `transitions never taken:\n${missing.join('\n')}`).toEqual([]);
    expect(covered.size).toBeGreaterThan(40);
  });
});
