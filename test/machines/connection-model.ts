/**
 * The model of the connection machine for model-based tests: the events each state can receive
 * (with the actor outputs and errors that drive it), a coarse state serialisation that keeps the
 * traversal finite, path generation with @xstate/graph, and transition keys for a coverage check
 * (@xstate/graph only guarantees state coverage).
 */
import { getAdjacencyMap, getShortestPaths, joinPaths, serializeEvent, type StatePath } from '@xstate/graph';
import { expect, vi } from 'vitest';
import {
  createActor,
  fromCallback,
  fromPromise,
  setup,
  type AnyActorRef,
  type AnyEventObject,
  type AnyStateNode,
  type AnyTransitionDefinition,
  type EventObject,
  type SnapshotFrom,
} from 'xstate';
import { LockTimeoutError } from '../../src/bluez/errors.js';
import { createStateTrail, topLevelState } from '../../src/machines/state-trail.js';
import {
  AbortedError,
  AdapterError,
  DeviceNotFoundError,
  InProgressError,
  NoReplyError,
  OutOfSlotsError,
  ValidationError,
} from '../../src/bluez/errors.js';
import { connectionMachine } from '../../src/machines/connection.js';
import { watchdogMachine } from '../../src/machines/watchdog.js';
import type { ConnectionInput } from '../../src/machines/connection-contracts.js';
import { DEFAULT_ESCALATION } from '../../src/machines/profiles.js';

export type ConnectionSnapshot = SnapshotFrom<typeof connectionMachine>;
export type ModelPath = StatePath<ConnectionSnapshot, AnyEventObject>;

/**
 * Inputs that together reach every transition: opt-in phantom cleanup or not, two adapters with
 * the whole ladder (thresholds lowered so reset is reachable within the attempts), and one with
 * diagnose off so plain retry is chosen.
 */
export const MODEL_INPUTS: Record<string, ConnectionInput> = {
  ladder: {
    address: 'AA:BB:CC:DD:EE:10',
    adapters: ['hci0', 'hci1'],
    maxAttempts: 4,
    attemptTimeoutMs: 400,
    // The RF-abort link wait (after linkDownDeadline) ends before the attempt deadline.
    disconnectTimeoutMs: 100,
    closeInactiveConnections: true,
    escalation: {
      ...DEFAULT_ESCALATION,
      reset: true,
      rotateAfter: 2,
      clearAfter: 2,
      resetAfter: 3,
      resetCooldownMs: 0,
    },
    backoffMs: {
      aborted: 20,
      inProgress: 20,
      outOfSlots: 20,
      validation: 20,
      noReply: 20,
      phantom: 20,
      other: 20,
    },
  },
  pooled: {
    address: 'AA:BB:CC:DD:EE:12',
    adapters: ['hci0'],
    pooled: true,
    maxAttempts: 2,
    attemptTimeoutMs: 400,
    // The RF-abort link wait (after linkDownDeadline) ends before the attempt deadline.
    disconnectTimeoutMs: 100,
    closeInactiveConnections: false,
    escalation: { ...DEFAULT_ESCALATION, rotateAfter: 1, maxLevel: 'rotate' },
    backoffMs: {
      aborted: 20,
      inProgress: 20,
      outOfSlots: 20,
      validation: 20,
      noReply: 20,
      phantom: 20,
      other: 20,
    },
  },
  plain: {
    address: 'AA:BB:CC:DD:EE:11',
    adapters: ['hci0'],
    maxAttempts: 2,
    attemptTimeoutMs: 400,
    // The RF-abort link wait (after linkDownDeadline) ends before the attempt deadline.
    disconnectTimeoutMs: 100,
    closeInactiveConnections: false,
    escalation: { ...DEFAULT_ESCALATION, diagnose: false },
    // A zombie is only reported: the link stays.
    watchdog: { timeoutMs: 1000, probe: null, action: 'report' },
    // The run's own deadline (the model fires it where no other timer runs).
    overallTimeoutMs: 60_000,
    backoffMs: {
      aborted: 20,
      inProgress: 20,
      outOfSlots: 20,
      validation: 20,
      noReply: 20,
      phantom: 20,
      other: 20,
    },
  },
};

/** Pooled and parked during backoffs (as the adapter pool runs its children): the wait ends in `waiting-for-slot`, attempts kept. */
MODEL_INPUTS['parked'] = {
  ...(MODEL_INPUTS['pooled'] as ConnectionInput),
  address: 'AA:BB:CC:DD:EE:14',
  parkDuringBackoff: true,
};

/** Keep-alive with a reconnecting watchdog: link loss and zombies start a reconnect run. */
MODEL_INPUTS['keepAlive'] = {
  address: 'AA:BB:CC:DD:EE:13',
  adapters: ['hci0'],
  maxAttempts: 2,
  attemptTimeoutMs: 400,
  disconnectTimeoutMs: 100,
  closeInactiveConnections: false,
  escalation: { ...DEFAULT_ESCALATION, diagnose: false },
  // Link loss (notConnected) waits 0 ms by default; a model step needs a timer to rest on.
  backoffMs: { ...MODEL_INPUTS['plain']?.backoffMs, notConnected: 20, zombie: 20 },
  watchdog: { timeoutMs: 1000, probe: null, action: 'reconnect' },
  keepAlive: true,
};

/** The watchdog child with inert actors (its timer never fires in a replay): the model sends ZOMBIE itself. */
const INERT_WATCHDOG = {
  notificationWatchdog: watchdogMachine.provide({
    actors: {
      listenForActivity: fromCallback(() => () => {}),
      probeCharacteristic: fromPromise(async () => {}),
    },
  }),
};

const zombie = {
  type: 'ZOMBIE',
  address: 'AA:BB:CC:DD:EE:13',
  adapter: 'hci0',
  silenceMs: 1000,
  timeoutMs: 1000,
  probed: false,
  probeError: null,
};

const rf = () => new AbortedError('le-connection-abort-by-local', { dbusName: 'org.bluez.Error.Failed' });

/** The actions through which a pooled actor talks to its parent (sendParent), as no-ops. */
export const POOL_SENDS_AS_NO_OPS = {
  requestRotationFromPool: () => {},
  tellPool: () => {},
} as const;

/** The events (actor outcomes and external events) the model offers in each state. */
export function modelEvents(snapshot: ConnectionSnapshot): AnyEventObject[] {
  // The steps of a run are children of `establishing`.
  const TOP = new Set(['idle', 'connected', 'disconnecting', 'waiting-for-slot', 'failed']);
  const m = (s: string | Record<string, string>) => {
    const key = typeof s === 'string' ? s : (Object.keys(s)[0] ?? '');
    return snapshot.matches((TOP.has(key) ? s : { establishing: s }) as never);
  };
  const events: AnyEventObject[] = [];
  const cancel = { type: 'CANCEL', reason: 'aborted' };
  // The pool's answer when no adapter has a free slot (the machine accepts it pooled or not).
  const queued = { type: 'QUEUED_FOR_SLOT', reason: 'hci0 has no free slot' };
  if (m('idle')) events.push({ type: 'CONNECT' });
  if (m('locking')) {
    events.push(
      {
        type: 'xstate.done.actor.acquireDeviceLock',
        output: { lease: 'lease-1', slotLease: null, degraded: false, waitedMs: 0 },
      },
      {
        type: 'xstate.done.actor.acquireDeviceLock',
        output: { lease: 'lease-1', slotLease: null, degraded: true, waitedMs: 15000 },
      },
      { type: 'xstate.error.actor.acquireDeviceLock', error: new Error('lock registry failed') },
      // A strict slot timeout (or a refused lock path) ends the actor with that error, not a retry.
      {
        type: 'xstate.error.actor.acquireDeviceLock',
        error: new LockTimeoutError('a connection slot on hci0 was not free within 15000 ms', {
          adapter: 'hci0',
        }),
      },
      cancel,
      queued,
    );
  }
  if (m({ 'clearing-stale': 'inspecting' })) {
    events.push(
      {
        type: 'xstate.done.actor.inspectDevice',
        output: { known: true, connected: false, servicesResolved: false },
      },
      {
        type: 'xstate.done.actor.inspectDevice',
        output: { known: true, connected: true, servicesResolved: false },
      },
      // A paired phantom: its clearing tries to keep the bond.
      {
        type: 'xstate.done.actor.inspectDevice',
        output: { known: true, connected: true, servicesResolved: false, paired: true },
      },
      {
        type: 'xstate.done.actor.inspectDevice',
        output: { known: true, connected: true, servicesResolved: true },
      },
      { type: 'xstate.error.actor.inspectDevice', error: new AdapterError('adapter hci0 is gone') },
      cancel,
      queued,
    );
  }
  if (m({ 'clearing-stale': 'cancelling-stale-connect' })) {
    events.push(
      { type: 'xstate.done.actor.cancelStalePendingConnect' },
      // What the simulator can make of it: the Disconnect that cancels the pending connect hangs
      // and our deadline ends it (bluetoothd has no InProgress answer for Disconnect).
      {
        type: 'xstate.error.actor.cancelStalePendingConnect',
        error: new NoReplyError('Disconnect did not reply'),
      },
    );
  }
  if (m({ 'clearing-stale': 'clearing-device-cache' })) {
    events.push(
      { type: 'xstate.done.actor.clearDeviceCache' },
      {
        type: 'xstate.error.actor.clearDeviceCache',
        error: new DeviceNotFoundError('device did not reappear'),
      },
    );
  }
  if (m({ phantom: 'releasing-bond' })) {
    events.push(
      {
        type: 'xstate.done.actor.releaseBondedPhantom',
        output: { outcome: 'disconnected', known: true },
      },
      { type: 'xstate.done.actor.releaseBondedPhantom', output: { outcome: 'removed', known: true } },
      {
        type: 'xstate.done.actor.releaseBondedPhantom',
        output: { outcome: 'notConnected', known: false },
      },
      {
        type: 'xstate.error.actor.releaseBondedPhantom',
        error: new NoReplyError('RemoveDevice did not reply'),
      },
      cancel,
      queued,
    );
  }
  if (m({ phantom: 'removing' })) {
    events.push(
      { type: 'xstate.done.actor.removePhantom' },
      { type: 'xstate.error.actor.removePhantom', error: new NoReplyError('RemoveDevice did not reply') },
    );
  }
  if (m({ phantom: 'awaiting-removal' })) {
    events.push(
      { type: 'xstate.done.actor.awaitDeviceGone' },
      { type: 'xstate.error.actor.awaitDeviceGone', error: new NoReplyError('the device object stayed') },
    );
  }
  if (m({ phantom: 'rediscovering' })) {
    events.push(
      { type: 'xstate.done.actor.rediscoverDevice', output: { reappeared: true } },
      { type: 'xstate.error.actor.rediscoverDevice', error: new Error('the BlueZ mirror is closed') },
    );
  }
  if (m({ connecting: 'searching' })) {
    events.push(
      { type: 'xstate.done.actor.findDevice' },
      { type: 'xstate.error.actor.findDevice', error: new DeviceNotFoundError('not discovered') },
      // CANCEL and QUEUED_FOR_SLOT are handled by `connecting` itself, the same transitions as
      // in `requesting` (covered there); leaving them out here keeps the state space small.
    );
  }
  if (m({ connecting: 'requesting' })) {
    events.push(
      { type: 'xstate.done.actor.connectWithDeadline' },
      { type: 'xstate.error.actor.connectWithDeadline', error: rf() },
      {
        type: 'xstate.error.actor.connectWithDeadline',
        error: new InProgressError('Operation already in progress'),
      },
      {
        type: 'xstate.error.actor.connectWithDeadline',
        error: new OutOfSlotsError('No available connection slot'),
      },
      // An RF abort with the adapter's other links at the slot limit: a refusal for lack of slots.
      {
        type: 'xstate.error.actor.connectWithDeadline',
        error: Object.assign(rf(), { linksOnAdapter: 2, slotLimit: 2 }),
      },
      // The device object went away before the Connect: search again.
      {
        type: 'xstate.error.actor.connectWithDeadline',
        error: new DeviceNotFoundError('no longer known on hci0'),
      },
      cancel,
      queued,
    );
  }
  if (m({ connecting: 'awaiting-link-down' })) {
    events.push(
      { type: 'xstate.done.actor.waitLinkDown' },
      { type: 'xstate.error.actor.waitLinkDown', error: new Error('the BlueZ mirror is closed') },
    );
  }
  if (m({ validating: 'checking' })) {
    events.push(
      { type: 'xstate.done.actor.validateOnce', output: { passed: true } },
      // Services missing: wait for late GATT while the budget lasts, else the attempt fails.
      {
        type: 'xstate.done.actor.validateOnce',
        output: { passed: false, reason: 'no GATT services exported', nextCheckInMs: 50 },
      },
      {
        type: 'xstate.done.actor.validateOnce',
        output: { passed: false, reason: 'no GATT services exported', nextCheckInMs: null },
      },
      // The validator threw: the attempt fails at once.
      {
        type: 'xstate.error.actor.validateOnce',
        error: new ValidationError('the validator threw: read failed'),
      },
      cancel,
      queued,
    );
  }
  if (m({ validating: 'waiting-for-late-gatt' })) {
    events.push(
      { type: 'xstate.done.actor.awaitGattSettled', output: { outcome: 'settled' } },
      { type: 'xstate.done.actor.awaitGattSettled', output: { outcome: 'disconnected' } },
      { type: 'xstate.error.actor.awaitGattSettled', error: new Error('the BlueZ mirror is closed') },
    );
  }
  if (m('connected')) {
    events.push(
      { type: 'DISCONNECT' },
      { type: 'LINK_LOST', reason: 'notification watchdog: silent for 30 s' },
      { type: 'xstate.done.actor.watchLink', output: { reason: 'Connected=false' } },
      { type: 'xstate.error.actor.watchLink', error: new Error('the BlueZ mirror is closed') },
      { type: 'ACTIVITY' },
    );
    // Only a configured watchdog declares zombies.
    if (snapshot.context.watchdog !== null) events.push(zombie);
  }
  if (m('disconnecting')) {
    events.push(
      { type: 'xstate.done.actor.verifiedDisconnect', output: { outcome: 'disconnected' } },
      {
        type: 'xstate.error.actor.verifiedDisconnect',
        error: new NoReplyError('RemoveDevice did not reply'),
      },
      cancel,
      queued,
    );
  }
  if (m('resetting')) {
    events.push(
      { type: 'xstate.done.actor.resetAdapter' },
      { type: 'xstate.error.actor.resetAdapter', error: new AdapterError('power cycle not verified') },
      cancel,
      queued,
    );
  }
  if (m('backoff')) events.push(cancel, queued, { type: 'ADAPTER_ASSIGNED', adapter: 'hci1' });
  if (m('waiting-for-slot')) events.push({ type: 'ADAPTER_ASSIGNED', adapter: 'hci1' }, cancel);
  // Delays: the `after` transitions of the innermost active state that has any (the timer that
  // fires first in a replay: inner deadlines are shorter than the ones around them). The overall
  // deadline is offered where no other timer runs, and only when the run has one.
  const delays = snapshot._nodes
    .map((node) => [...node.transitions.keys()].filter((type) => type.startsWith('xstate.after.')))
    .filter((types) => types.length > 0);
  const overall = (type: string) => type.includes('overallDeadline');
  const inner = delays.map((types) => types.filter((t) => !overall(t))).filter((t) => t.length > 0);
  const innermost = inner[inner.length - 1];
  if (innermost !== undefined) for (const type of innermost) events.push({ type });
  else if (snapshot.context.deadlineAt !== null) {
    for (const types of delays) for (const type of types.filter(overall)) events.push({ type });
  }
  return events;
}

/**
 * Failure streaks above every escalation threshold of the model inputs decide the same way. The
 * ledger outlives a wait for a slot (which starts a fresh run), so without this cap the streak would
 * grow with every park-and-fail cycle and the traversal would not end.
 */
const STREAK_CAP = 4;

/** What decides behaviour: state, attempt count, the streak on the adapter and the flags. */
export function serializeModelState(snapshot: ConnectionSnapshot): string {
  const c = snapshot.context;
  return JSON.stringify([
    snapshot.value,
    snapshot.status,
    c.adapter,
    c.assignedAdapter,
    c.attempts.length,
    Math.min(c.ledger.failures[c.adapter] ?? 0, STREAK_CAP),
    c.adapter in c.ledger.lastResetAt,
    c.staleInProgress,
    c.diagnoseNext,
    c.clearCacheNext,
    c.linkMayBeOpen,
    c.teardown,
    c.cancellation,
    c.queuedForSlot,
    c.deadlineAt !== null,
    c.heldFailure === null ? null : [c.heldFailure.class, c.heldFailure.slotLimit ?? null],
    c.finding?.paired === true,
  ]);
}

/** A stable key for a transition definition: source state id, event, position among its siblings. */
export function transitionKey(t: AnyTransitionDefinition): string {
  const source = t.source as AnyStateNode;
  const siblings: readonly AnyTransitionDefinition[] =
    t.eventType === '' ? (source.always ?? []) : (source.transitions.get(t.eventType) ?? []);
  const index = siblings.indexOf(t);
  return `${source.id} | ${t.eventType === '' ? '(always)' : t.eventType} | #${index}${
    t.target?.length ? ` → ${t.target.map((n) => n.id).join(',')}` : ''
  }`;
}

/** Every transition definition of the machine, by key. */
export function allTransitionKeys(machine: typeof connectionMachine = connectionMachine): string[] {
  const keys: string[] = [];
  const visit = (node: AnyStateNode): void => {
    for (const list of node.transitions.values()) for (const t of list) keys.push(transitionKey(t));
    for (const t of node.always ?? []) keys.push(transitionKey(t));
    for (const child of Object.values(node.states)) visit(child as AnyStateNode);
  };
  visit(machine.root as AnyStateNode);
  return [...new Set(keys)];
}

/** The state without counters: what the next transition's choice can depend on, coarsely. */
function abstractState(snapshot: ConnectionSnapshot): string {
  const c = snapshot.context;
  return JSON.stringify([
    snapshot.value,
    snapshot.status,
    c.assignedAdapter !== null,
    c.staleInProgress,
    c.diagnoseNext,
    c.clearCacheNext,
    c.linkMayBeOpen,
    c.teardown,
    c.cancellation,
    c.queuedForSlot,
    c.deadlineAt !== null,
    Object.keys(c.ledger.lastResetAt).length > 0,
  ]);
}

function edgeKey(from: ConnectionSnapshot, event: AnyEventObject, to: ConnectionSnapshot): string {
  return `${abstractState(from)} -${serializeEvent(event)}-> ${abstractState(to)}`;
}

/**
 * Paths for one model input. @xstate/graph's shortest paths reach every model state; many differ
 * only in counters, so a path is kept when it reaches a new abstract state or takes a new abstract
 * edge. Then every adjacency edge not yet taken is added as "shortest path to its source + the
 * edge", so every (state, event, outcome) is exercised and not only every state.
 */
export function generatePaths(
  input: ConnectionInput,
  keepEvent: (event: AnyEventObject, snapshot: ConnectionSnapshot) => boolean = () => true,
): ModelPath[] {
  // Traversal runs without a parent, so what a pooled actor sends its pool is a no-op here
  // (replays have a parent).
  const machine = connectionMachine.provide({ actions: POOL_SENDS_AS_NO_OPS, actors: INERT_WATCHDOG });
  const options = {
    input,
    events: (s: ConnectionSnapshot) => modelEvents(s).filter((e) => keepEvent(e, s)),
    serializeState: (s: ConnectionSnapshot) => serializeModelState(s),
  } as const;
  const shortest = (getShortestPaths(machine, options as never) as unknown as ModelPath[]).sort(
    (a, b) => a.weight - b.weight,
  );
  const bySource = new Map<string, ModelPath>();
  for (const path of shortest) bySource.set(serializeModelState(path.state), path);
  const seenStates = new Set<string>();
  const seenEdges = new Set<string>();
  const chosen: ModelPath[] = [];
  const take = (path: ModelPath): void => {
    chosen.push(path);
    path.steps.forEach((step, i) => {
      seenStates.add(abstractState(step.state));
      const prev = path.steps[i - 1];
      if (prev) seenEdges.add(edgeKey(prev.state, step.event, step.state));
    });
  };
  for (const path of shortest) {
    const novel = path.steps.some((step, i) => {
      const prev = path.steps[i - 1];
      return (
        !seenStates.has(abstractState(step.state)) ||
        (prev && !seenEdges.has(edgeKey(prev.state, step.event, step.state)))
      );
    });
    if (novel) take(path);
  }
  const adjacency = getAdjacencyMap(machine as never, options as never) as unknown as Record<
    string,
    { transitions: Record<string, { event: AnyEventObject; state: unknown }> }
  >;
  for (const [source, value] of Object.entries(adjacency)) {
    const head = bySource.get(source);
    if (head === undefined) continue;
    for (const { event, state } of Object.values(value.transitions)) {
      const next = state as ConnectionSnapshot;
      if (seenEdges.has(edgeKey(head.state, event, next))) continue;
      const tail: ModelPath = {
        state: next,
        steps: [
          { state: head.state, event: { type: 'xstate.init' } },
          { state: next, event },
        ],
        weight: 1,
      };
      take(joinPaths(head, tail) as ModelPath);
    }
  }
  return chosen;
}

/** Top-level state names along a path (the expected state sequence of a run). */
export function expectedStates(path: ModelPath): string[] {
  const out: string[] = [];
  for (const step of path.steps) {
    const name = topLevelState(step.state.value);
    if (out[out.length - 1] !== name) out.push(name);
  }
  return out;
}

interface Deferred {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** What one replay saw. */
export interface ReplayResult {
  /** States the actor rested in (comparable with {@link expectedStates}). */
  settled: string[];
  /** Every state entered, transient ones included. */
  states: string[];
  /** Keys of the transitions taken. */
  transitions: string[];
}

/**
 * Replays one path on a running actor (vitest fake timers must be installed) whose actors settle
 * exactly as the path says; after every step the actor must be in the state the model predicted.
 */
export async function replayWithScriptedActors(
  input: ConnectionInput,
  path: ModelPath,
): Promise<ReplayResult> {
  const pending = new Map<string, Deferred>();
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
    'releaseBondedPhantom',
    'removePhantom',
    'awaitDeviceGone',
    'rediscoverDevice',
    'findDevice',
    'connectWithDeadline',
    'waitLinkDown',
    'validateOnce',
    'awaitGattSettled',
    'verifiedDisconnect',
    'resetAdapter',
    'watchLink',
  ];
  const logic = connectionMachine.provide({
    actors: {
      ...Object.fromEntries(names.map((n) => [n, manual(n)])),
      ...INERT_WATCHDOG,
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
      } else {
        device.send(event);
      }
      await vi.advanceTimersByTimeAsync(0);
      expect(serializeModelState(device.getSnapshot())).toBe(serializeModelState(step.state));
    }
  } finally {
    root.stop();
  }
  expect(vi.getTimerCount()).toBe(0);
  return { settled: trail.settled, states: trail.states, transitions: trail.transitions.map(transitionKey) };
}
