/**
 * Model-based: paths generated with @xstate/graph from the adapter machine reach every state and,
 * together, take every transition. Each path is replayed on a running adapter actor under a
 * parent that stands in for the pool; after every step the actor must be where the model said,
 * and a learned limit's time running out must reach the parent as LIMIT_REPROBE.
 * (The same machine driven by the real pool over the simulator: test/pool/pool.model.test.ts.)
 */
import type { StatePath } from '@xstate/graph';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createActor, setup, type AnyActorRef, type AnyEventObject, type SnapshotFrom } from 'xstate';
import {
  adapterMachine,
  type AdapterInput,
  type AdapterStatus,
  type LimitReprobeReport,
} from '../../src/machines/adapter.js';
import { allStateIds, allTransitionKeys, pathsOverEveryEdge, transitionRecorder } from './chart-model.js';

type AdapterSnapshot = SnapshotFrom<typeof adapterMachine>;
type AdapterPath = StatePath<AdapterSnapshot, AnyEventObject>;

const USABLE: AdapterStatus = {
  present: true,
  powered: true,
  resets: 0,
  inUse: 0,
  configuredLimit: 3,
  learnedLimit: null,
  suspectedLimit: null,
};

/** The pool's figures the model sends (ADAPTER_STATUS replaces them all). */
const STATUSES: Record<string, AdapterStatus> = {
  free: USABLE,
  full: { ...USABLE, inUse: 3 },
  off: { ...USABLE, powered: false },
  gone: { ...USABLE, present: false, powered: false },
  resetting: { ...USABLE, resets: 1 },
  suspected: { ...USABLE, suspectedLimit: 2 },
  learned2: { ...USABLE, learnedLimit: 2, inUse: 2 },
  learned1: { ...USABLE, learnedLimit: 1, inUse: 1 },
};

/** Start figures that together take every branch of the two `settling` states. */
const INPUTS: Record<string, AdapterInput> = {
  usable: { name: 'hci0', limitReprobeMs: 1000, status: USABLE },
  offSuspected: { name: 'hci0', limitReprobeMs: 1000, status: { ...STATUSES.off!, suspectedLimit: 2 } },
  goneLearned: { name: 'hci0', limitReprobeMs: 1000, status: { ...STATUSES.gone!, learnedLimit: 2 } },
  resetting: { name: 'hci0', limitReprobeMs: 1000, status: STATUSES.resetting! },
};

const REPROBE = 'xstate.after.limitReprobe.adapter.limit.learned';

function modelEvents(snapshot: AdapterSnapshot): AnyEventObject[] {
  const events: AnyEventObject[] = Object.values(STATUSES).map((s) => ({ type: 'ADAPTER_STATUS', ...s }));
  if (snapshot.matches({ limit: 'learned' })) events.push({ type: REPROBE });
  return events;
}

function serialize(snapshot: AdapterSnapshot): string {
  const { name: _name, limitReprobeMs: _ms, ...figures } = snapshot.context;
  return JSON.stringify([snapshot.value, figures]);
}

function generatePaths(input: AdapterInput): AdapterPath[] {
  // Traversal runs without a parent: the report to the pool is a no-op here (replays have one).
  const machine = adapterMachine.provide({ actions: { askForReprobe: () => {} } });
  return pathsOverEveryEdge<AdapterSnapshot, AdapterInput>(machine, {
    input,
    events: modelEvents,
    serializeState: serialize,
  });
}

/** Replays `path` on a running adapter actor whose parent records what it is told. */
async function replay(
  input: AdapterInput,
  path: AdapterPath,
  inspect: ReturnType<typeof transitionRecorder>['inspect'],
) {
  const reports: LimitReprobeReport[] = [];
  const parent = setup({ actors: { adapter: adapterMachine } }).createMachine({
    invoke: { id: 'adapter', src: 'adapter', input },
    on: { LIMIT_REPROBE: { actions: ({ event }) => reports.push(event as LimitReprobeReport) } },
  });
  const root = createActor(parent, { inspect });
  root.start();
  const adapter = root.getSnapshot().children['adapter'] as AnyActorRef;
  try {
    expect(serialize(adapter.getSnapshot())).toBe(serialize(path.steps[0]!.state));
    for (const step of path.steps.slice(1)) {
      const before = reports.length;
      if (step.event.type === REPROBE) {
        await vi.advanceTimersToNextTimerAsync();
        expect(reports.slice(before)).toEqual([{ type: 'LIMIT_REPROBE', name: 'hci0' }]);
      } else {
        adapter.send(step.event);
        await vi.advanceTimersByTimeAsync(0);
      }
      expect(serialize(adapter.getSnapshot())).toBe(serialize(step.state));
    }
  } finally {
    root.stop();
  }
  expect(vi.getTimerCount()).toBe(0);
}

const recorder = transitionRecorder(['adapter']);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('adapter machine, model-based (replayed on the actor)', () => {
  for (const [name, input] of Object.entries(INPUTS)) {
    it(`${name}: every generated path runs on the actor, which is where the model says after every step`, async () => {
      const paths = generatePaths(input);
      expect(paths.length).toBeGreaterThan(5);
      for (const path of paths) await replay(input, path, recorder.inspect);
    });
  }

  it('the paths reach every state of the machine (transient ones included)', () => {
    expect([...recorder.states('adapter')].sort()).toEqual(allStateIds(adapterMachine));
  });

  it('the paths take every transition of the machine', () => {
    const keys = allTransitionKeys(adapterMachine);
    const missing = keys.filter((k) => !recorder.transitions('adapter').has(k));
    expect(missing, `transitions never taken:\n${missing.join('\n')}`).toEqual([]);
    expect(keys.length).toBeGreaterThan(25);
  });
});
