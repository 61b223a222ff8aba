/**
 * Model-based tests of the adapter pool chart.
 *
 * 1. Paths generated with @xstate/graph from the pool machine (every state, every event the model
 *    offers in it) replayed on a running pool over scripted children: after every step the pool is
 *    in the state the model predicted; together the paths take every transition.
 * 2. The same transitions driven on the real pool (real connection actors, src/bluez) against the
 *    simulator, each by the fault or call that causes it in the field; the inspection stream says
 *    which transition definitions the real pool took. What no fault can drive is listed, and the
 *    list is asserted exactly: a transition that becomes drivable, or one that stops being driven,
 *    fails the test.
 */
import type { StatePath } from '@xstate/graph';
import { afterEach, describe, expect, it } from 'vitest';
import { createActor, type AnyEventObject, type SnapshotFrom } from 'xstate';
import { createAdapterPool } from '../../src/pool/create-adapter-pool.js';
import { adapterPoolMachine, type PoolInput } from '../../src/machines/adapter-pool.js';
import { adapterMachine } from '../../src/machines/adapter.js';
import {
  allStateIds,
  allTransitionKeys,
  pathsOverEveryEdge,
  transitionRecorder,
} from '../machines/chart-model.js';
import { fakeChild } from './fake-child.js';
import { eventually, peripheral, startPoolWorld, type PoolWorld } from './sim-harness.js';

type PoolSnapshot = SnapshotFrom<typeof adapterPoolMachine>;
type PoolPath = StatePath<PoolSnapshot, AnyEventObject>;

const DEV = 'AA:00:00:00:00:01';
const SETTINGS = {
  maxAttempts: 2,
  attemptTimeoutMs: 1000,
  closeInactiveConnections: false,
  escalation: {
    diagnose: false,
    clear: false,
    rotate: true,
    reset: false,
    rotateAfter: 1,
    clearAfter: 4,
    resetAfter: 6,
    resetCooldownMs: 300_000,
    maxLevel: 'rotate' as const,
  },
  backoffMs: {},
};

/** One event of each kind the pool takes, about one device on hci0 (the model's alphabet). */
function modelEvents(snapshot: PoolSnapshot): AnyEventObject[] {
  const events: AnyEventObject[] = [
    { type: 'BLUEZ_UP' },
    { type: 'BLUEZ_DOWN' },
    { type: 'CONNECT_DEVICE', address: DEV, settings: SETTINGS, keepAlive: true },
    { type: 'DISCONNECT_DEVICE', address: DEV },
    { type: 'ADAPTER_PRESENT', name: 'hci1', powered: true },
    { type: 'ADAPTER_GONE', name: 'hci1' },
    { type: 'SIGHTINGS', address: DEV, sightings: { hci0: -60 } },
    { type: 'ADAPTER_LINKS', name: 'hci0', connected: [] },
    { type: 'LINKS_CHANGED', name: 'hci0', up: [], down: [] },
    { type: 'ADAPTER_FOREIGN_ATTEMPTS', name: 'hci0', count: 0 },
    { type: 'LIMIT_REPROBE', name: 'hci0' },
    { type: 'NEXT_TURN' },
    { type: 'CHILD_CONNECTED', address: DEV, adapter: 'hci0' },
    { type: 'CHILD_LINK_LOST', address: DEV, adapter: 'hci0', reason: 'Connected=false' },
    { type: 'CHILD_IDLE', address: DEV, adapter: 'hci0' },
    { type: 'CHILD_ATTEMPT_FAILED', address: DEV, adapter: 'hci0', failureClass: 'other' },
    { type: 'CHILD_PARKED', address: DEV, adapter: 'hci0' },
    { type: 'CHILD_WAITING_FOR_SLOT', address: DEV, adapter: 'hci0' },
    { type: 'CHILD_RESETTING', address: DEV, adapter: 'hci0', running: false },
    { type: 'ROTATION_REQUESTED', address: DEV, fromAdapter: 'hci0', failureClass: 'other' },
    // What XState sends a parent when a child ends or throws (ids no child of the model has).
    { type: 'xstate.done.actor.device:gone#1', actorId: 'device:gone#1', output: undefined },
    { type: 'xstate.error.actor.device:gone#1', actorId: 'device:gone#1', error: new Error('boom') },
  ];
  return snapshot.status === 'active' ? events : [];
}

/** The chart's state: what the model predicts (the context is the steps' business, tested in pool-machine). */
const serialize = (snapshot: PoolSnapshot): string => JSON.stringify([snapshot.value, snapshot.status]);

const INPUTS: Record<string, PoolInput> = {
  bluezUp: { slotsPerAdapter: 2, strategy: 'round-robin', adapters: [{ name: 'hci0', powered: true }] },
  bluezAway: {
    slotsPerAdapter: 2,
    strategy: 'round-robin',
    adapters: [{ name: 'hci0', powered: true }],
    bluezUp: false,
  },
};

describe('adapter pool chart, model-based (scripted children)', () => {
  const recorder = transitionRecorder(['adapterPool']);
  for (const [name, input] of Object.entries(INPUTS)) {
    it(`${name}: every generated path runs on a pool actor, which is where the model says after every step`, () => {
      const logic = adapterPoolMachine.provide({ actors: { connection: fakeChild as never } });
      const paths = pathsOverEveryEdge<PoolSnapshot, PoolInput>(logic, {
        input,
        events: modelEvents,
        serializeState: serialize,
      }) as PoolPath[];
      expect(paths.length).toBeGreaterThan(20);
      for (const path of paths) {
        const pool = createActor(logic, { input, inspect: recorder.inspect });
        pool.start();
        try {
          expect(serialize(pool.getSnapshot())).toBe(serialize(path.steps[0]!.state));
          for (const step of path.steps.slice(1)) {
            pool.send(step.event as never);
            expect(serialize(pool.getSnapshot())).toBe(serialize(step.state));
          }
        } finally {
          pool.stop();
        }
      }
    });
  }

  it('the paths reach every state and take every transition of the chart', () => {
    expect([...recorder.states('adapterPool')].sort()).toEqual(allStateIds(adapterPoolMachine));
    const missing = allTransitionKeys(adapterPoolMachine).filter(
      (k) => !recorder.transitions('adapterPool').has(k),
    );
    expect(missing, `transitions never taken:\n${missing.join('\n')}`).toEqual([]);
  });
});

/**
 * Transitions no fault of the simulator can drive on the real pool, and where they are tested
 * instead. Asserted exactly below.
 */
const UNDRIVABLE_ON_SIMULATOR: Record<string, string> = {
  // Another process's connect attempts (its slot lock files held by another pid): needs a second
  // process with slot locks on; the watch itself is tested in test/lock.
  'adapterPool.managing | ADAPTER_FOREIGN_ATTEMPTS | #0': 'another process holding slot locks',
  // A connection actor whose own code throws: the real one does not (pool-machine.test.ts uses a
  // scripted child that does).
  'adapterPool.managing | xstate.error.actor.* | #0': 'a crashing child',
};

let worlds: PoolWorld[] = [];
afterEach(async () => {
  for (const w of worlds) await w.stop();
  worlds = [];
});

describe('adapter pool chart on the simulator (real children, faults drive the steps)', () => {
  it('every transition but the listed undrivable ones is taken by the real pool, each driven by its fault', async () => {
    const recorder = transitionRecorder(['adapterPool', 'adapter']);
    const [A, B, C, X, Z, F] = [1, 2, 3, 4, 5, 6].map((n) => `AA:BB:CC:00:01:0${n}`) as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const w = await startPoolWorld(
      {
        // hci2's controller holds one link although the pool allows two: a refusal teaches it.
        adapters: [{ name: 'hci0' }, { name: 'hci1' }, { name: 'hci2', slotLimit: 1 }],
        devices: [
          peripheral(A, { knownOn: ['hci0'], inRange: ['hci0'] }),
          peripheral(B, { knownOn: ['hci0'], inRange: ['hci0'] }),
          peripheral(C, { knownOn: ['hci0', 'hci1'], inRange: ['hci0', 'hci1'] }),
          peripheral(X, { knownOn: ['hci2'], inRange: ['hci2'] }),
          peripheral(Z, { knownOn: ['hci2'], inRange: ['hci2'] }),
          peripheral(F, { knownOn: ['hci0'], inRange: ['hci0'] }),
        ],
      },
      {
        slotsPerAdapter: 2,
        limitReprobeMs: 300,
        inspect: recorder.inspect,
        resetLadder: { settleMs: 20, offSettleMs: 20, stepTimeoutMs: 5000 },
      },
    );
    worlds.push(w);
    const taken = (key: string) => recorder.transitions('adapterPool').has(key);
    const drive = async (keys: string[], what: () => Promise<unknown> | void): Promise<void> => {
      await what();
      await eventually(`the pool takes ${keys.join(', ')}`, () => keys.every(taken));
    };
    const fail = (device: string, count: number) =>
      w.env.sim.inject({
        kind: 'fail-connect',
        target: { device },
        count,
        errorName: 'org.bluez.Error.Failed',
        message: 'Input/output error',
      });

    // Started with org.bluez on the bus.
    expect(taken('adapterPool.bluez.waiting | (always) | #0 → adapterPool.bluez.up')).toBe(true);
    // A device connects, loses its link (and reconnects: keep-alive), then is disconnected.
    await drive(
      [
        'adapterPool.managing | SIGHTINGS | #0',
        'adapterPool.managing | CONNECT_DEVICE | #0',
        'adapterPool.managing | CHILD_CONNECTED | #0',
        'adapterPool.managing | ADAPTER_LINKS | #0',
        'adapterPool.managing | LINKS_CHANGED | #0',
      ],
      () => w.pool.connected(A),
    );
    await drive(['adapterPool.managing | CHILD_LINK_LOST | #0'], () => {
      w.env.sim.inject({ kind: 'link-drop', target: { device: A } });
    });
    await eventually('A connected again', () =>
      w.pool.snapshot().devices.some((d) => d.address === A && d.status === 'connected'),
    );
    await drive(
      ['adapterPool.managing | DISCONNECT_DEVICE | #0', 'adapterPool.managing | CHILD_IDLE | #0'],
      () => w.pool.disconnect(A),
    );
    // A failed Connect: the attempt fails, escalation resets the adapter (the ladder), the backoff
    // parks it, and it asks for a slot again when the wait is over.
    fail(B, 1);
    await drive(
      [
        'adapterPool.managing | CHILD_ATTEMPT_FAILED | #0',
        'adapterPool.managing | CHILD_RESETTING | #0',
        'adapterPool.managing | CHILD_PARKED | #0',
        'adapterPool.managing | CHILD_WAITING_FOR_SLOT | #0',
      ],
      () => w.pool.connected(B, { escalation: { reset: true, resetAfter: 1 }, backoffMs: { other: 50 } }),
    );
    // Escalation asks the pool for another adapter.
    fail(C, 1);
    await drive(['adapterPool.managing | ROTATION_REQUESTED | #0'], () =>
      w.pool.connected(C, { escalation: { rotate: true, rotateAfter: 1, diagnose: false, reset: false } }),
    );
    // Their sessions are over: hci0's two slots are free again.
    await w.pool.disconnect(B);
    await w.pool.disconnect(C);
    // A device that never connects ends its actor (attempts exhausted).
    fail(F, 100);
    await drive(['adapterPool.managing | xstate.done.actor.* | #0'], () =>
      w.pool.connected(F, { maxAttempts: 1 }).catch(() => undefined),
    );
    // hci2 refuses a second link: the pool learns limit 1, and the adapter actor asks for a re-probe.
    await w.pool.connected(X);
    await drive(['adapterPool.managing | LIMIT_REPROBE | #0'], () => {
      w.pool.connect(Z);
    });
    // An adapter unplugged and plugged in again.
    await drive(
      ['adapterPool.managing | ADAPTER_GONE | #0', 'adapterPool.managing | ADAPTER_PRESENT | #0'],
      () => {
        w.env.sim.inject({ kind: 'remove-adapter', target: { adapter: 'hci1' }, forMs: 200 });
      },
    );
    // bluetoothd restarts; a pool created while it is away waits for it.
    let late: ReturnType<typeof createAdapterPool> | undefined;
    try {
      await drive(['adapterPool.bluez.up | BLUEZ_DOWN | #0 → adapterPool.bluez.down'], () => {
        w.env.sim.inject({ kind: 'restart-daemon', target: { daemon: true }, downMs: 1500 });
      });
      await eventually('org.bluez gone', () => !w.bluez.mirror.bluezReady);
      late = createAdapterPool({ bluez: w.bluez, inspect: recorder.inspect });
      expect(late.actor.getSnapshot().matches({ bluez: 'waiting' })).toBe(true);
      await eventually('both pools see org.bluez back', () =>
        [
          'adapterPool.bluez.down | BLUEZ_UP | #0 → adapterPool.bluez.up',
          'adapterPool.bluez.waiting | BLUEZ_UP | #0 → adapterPool.bluez.up',
        ].every(taken),
      );
    } finally {
      await late?.close();
    }

    const all = allTransitionKeys(adapterPoolMachine);
    const notTaken = all.filter((k) => !taken(k));
    expect(notTaken).toEqual(Object.keys(UNDRIVABLE_ON_SIMULATOR).sort());
    expect([...recorder.states('adapterPool')].sort()).toEqual(allStateIds(adapterPoolMachine));
    // The adapter actors went through their states with the pool: slots filled, a limit learned
    // and re-probed, an adapter gone and back, one reset by a ladder.
    const adapterStates = recorder.states('adapter');
    for (const state of [
      'adapter.availability.on.free',
      'adapter.availability.on.full',
      'adapter.availability.gone',
      'adapter.availability.resetting',
      'adapter.limit.configured',
      'adapter.limit.learned',
    ]) {
      expect(adapterStates, state).toContain(state);
    }
    expect(allStateIds(adapterMachine)).toEqual(expect.arrayContaining([...adapterStates]));
  }, 60_000);
});
