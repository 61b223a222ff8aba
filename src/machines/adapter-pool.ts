/**
 * The adapter pool (docs/architecture.md): one per process or bus, the parent of one connection
 * actor per device.
 *
 * It owns what a single connection cannot know: which adapter to use (round-robin, or a score of
 * free slots, recent failures and the device's RSSI on that adapter, only among adapters on which
 * BlueZ sees the device), how many links each adapter holds (BlueZ exposes neither the limit nor the
 * usage, docs/bluez-facts.md), a queue when every adapter that sees a device is full, rotation when a
 * child's escalation asks for it, adapters appearing and disappearing, and bluetoothd restarts.
 *
 * The chart: two regions. `bluez` follows org.bluez on the bus: `waiting` (not there yet at
 * start), `up`, `down` (it went away: connecting devices wait in the queue, adapters are gone).
 * `managing` takes every other event as one named step of adapter-pool-steps.ts. Its children are
 * one connection actor per device (`device:<address>#<n>`, src/machines/connection.ts) and one
 * adapter actor per Adapter1 (`adapter:<name>`, src/machines/adapter.ts) whose states are that
 * adapter's availability, free/full slots and learned limit.
 *
 * No I/O: the runtime (src/pool) feeds it the mirror (ADAPTER_PRESENT/GONE, BLUEZ_UP/DOWN,
 * SIGHTINGS, ADAPTER_LINKS and LINKS_CHANGED: every link BlueZ shows, another service's too,
 * occupies a slot); the
 * children report to it themselves through sendParent (CHILD_CONNECTED, CHILD_LINK_LOST,
 * CHILD_IDLE, CHILD_ATTEMPT_FAILED, CHILD_RESETTING, CHILD_PARKED, CHILD_WAITING_FOR_SLOT; an
 * adapter actor's LIMIT_REPROBE) and ask for rotation (ROTATION_REQUESTED), which the pool answers
 * with ADAPTER_ASSIGNED or, when no adapter has a free slot, QUEUED_FOR_SLOT (the child waits;
 * one child per device). A child that waits out a backoff holds no slot (CHILD_PARKED) and asks for
 * one again when the wait ends, its attempt budget kept.
 * A child that ends or crashes is caught by the wildcard `xstate.done.actor.*` /
 * `xstate.error.actor.*` handlers: an unhandled child error would take the whole pool down
 * (in XState v5 a spawned child's error puts its parent in status `error` too).
 */
import { setup, type ActorRefFrom } from 'xstate';
import { connectionMachine } from './connection.js';
import type { ConnectionOutput } from './connection-contracts.js';
import { adapterActorId, adapterMachine } from './adapter.js';
import { emptyPoolTables, type AdapterStrategy, type PoolAdapter } from './adapter-pool-logic.js';
import {
  adapterGone,
  adapterLinks,
  adapterStatus,
  foreignAttempts,
  adapterPresent,
  admitDevice,
  bluezDown,
  bluezUp,
  childAttemptFailed,
  childConnected,
  childEnded,
  childParked,
  childResetting,
  childWaitingForSlot,
  childWentIdle,
  limitReprobe,
  linksChanged,
  nextTurn,
  releaseDevice,
  rotationRequested,
  updateSightings,
  type PoolContext,
  type PoolEmitted,
  type PoolEvent,
  type StepResult,
} from './adapter-pool-steps.js';

/** Input of the pool machine. */
export interface PoolInput {
  /** Links per adapter the pool allows (default 5, docs/defaults.md; CSR 5, Broadcom/RPi 7). */
  readonly slotsPerAdapter: number;
  readonly strategy: AdapterStrategy;
  /** Adapters known at start (the runtime sends the rest as ADAPTER_PRESENT). */
  readonly adapters?: ReadonlyArray<{ name: string; powered: boolean }>;
  /** org.bluez is on the bus at start. Default true. */
  readonly bluezUp?: boolean;
  /** How long a learned slot limit holds before the configured one is tried again. Default 600 000. */
  readonly limitReprobeMs?: number;
  /**
   * Queued devices the pool starts per turn at most (default: no bound). A turn ends after a zero
   * delay (the `nextTurn` delay): with a bound, a thousand devices asked for at once start a few
   * per macrotask instead of all in one, and the event loop keeps serving I/O meanwhile.
   */
  readonly startsPerTurn?: number;
}

/** Default of {@link PoolInput.limitReprobeMs}: ten minutes. */
export const DEFAULT_LIMIT_REPROBE_MS = 600_000;

/** A child that reached its final state (a connection actor in `failed`). */
export interface ChildDoneEvent {
  readonly type: `xstate.done.actor.${string}`;
  readonly actorId: string;
  readonly output: ConnectionOutput;
}
/** A child whose logic threw. */
export interface ChildErrorEvent {
  readonly type: `xstate.error.actor.${string}`;
  readonly actorId: string;
  readonly error: unknown;
}

/** The connection actor of a pooled device (what `pool.connect()` returns). */
export type PooledConnectionActor = ActorRefFrom<typeof connectionMachine>;
/** The actor of one adapter in the pool. */
export type PoolAdapterActor = ActorRefFrom<typeof adapterMachine>;

const base = setup({
  types: {
    context: {} as PoolContext,
    events: {} as PoolEvent | ChildDoneEvent | ChildErrorEvent,
    input: {} as PoolInput,
    emitted: {} as PoolEmitted,
  },
  actors: {
    connection: connectionMachine,
    adapter: adapterMachine,
  },
  delays: {
    /** A turn of {@link PoolInput.startsPerTurn} ends in the next macrotask (a timer). */
    nextTurn: 0,
  },
});

/** The enqueuer of the pool's actions (XState's, typed by the setup above). */
type Enqueue = Parameters<Parameters<typeof base.enqueueActions>[0]>[0]['enqueue'];

/** Carries out one step: the next context, the child commands in order, then the emitted events. */
function apply(enqueue: Enqueue, result: StepResult): void {
  enqueue.assign(() => result.context);
  for (const command of result.commands) {
    switch (command.kind) {
      case 'spawn':
        enqueue.spawnChild('connection', { id: command.childId, input: command.input });
        break;
      case 'spawn-adapter':
        enqueue.spawnChild('adapter', { id: command.childId, input: command.input });
        break;
      case 'send':
        enqueue.sendTo(command.childId, command.event);
        break;
      case 'adapter-status':
        enqueue.sendTo(command.childId, { type: 'ADAPTER_STATUS', ...command.status });
        break;
      case 'stop':
        enqueue.stopChild(command.childId);
        break;
      case 'next-turn':
        enqueue.raise({ type: 'NEXT_TURN' }, { delay: 'nextTurn', id: 'next-turn' });
        break;
    }
  }
  for (const emitted of result.emitted) enqueue.emit(emitted);
}

/** A named pool action: runs one pure step of adapter-pool-steps.ts for the events it handles. */
function step<T extends PoolEvent['type']>(
  types: readonly T[],
  run: (context: PoolContext, event: Extract<PoolEvent, { type: T }>) => StepResult,
) {
  const handles = (event: { type: string }): event is Extract<PoolEvent, { type: T }> =>
    types.some((t) => t === event.type);
  return base.enqueueActions(({ context, event, enqueue }) => {
    if (handles(event)) apply(enqueue, run(context, event));
  });
}

/** The child's final error: its output's error, or what crashed it. */
function endOf(event: ChildDoneEvent | ChildErrorEvent): { message: string; cause: unknown } {
  if ('error' in event) {
    const error = event.error;
    return {
      message: `the connection actor crashed: ${error instanceof Error ? error.message : String(error)}`,
      cause: error,
    };
  }
  return {
    message: event.output?.error?.message ?? 'the connection actor ended',
    cause: event.output?.error,
  };
}

function isChildEnd(event: { type: string }): event is ChildDoneEvent | ChildErrorEvent {
  return event.type.startsWith('xstate.done.actor.') || event.type.startsWith('xstate.error.actor.');
}

/** The pool machine; `connection` is the child logic (the runtime provides it with its I/O). */
export const adapterPoolSetup = base.extend({
  actions: {
    spawnAdapters: base.enqueueActions(({ context, enqueue }) => {
      for (const name of Object.keys(context.adapters)) {
        enqueue.spawnChild('adapter', {
          id: adapterActorId(name),
          input: { name, limitReprobeMs: context.limitReprobeMs, status: adapterStatus(context, name) },
        });
      }
    }),
    admitDevice: step(['CONNECT_DEVICE'], admitDevice),
    releaseDevice: step(['DISCONNECT_DEVICE'], releaseDevice),
    adapterPresent: step(['ADAPTER_PRESENT'], adapterPresent),
    adapterGone: step(['ADAPTER_GONE'], adapterGone),
    bluezDown: step(['BLUEZ_DOWN'], bluezDown),
    bluezUp: step(['BLUEZ_UP'], bluezUp),
    adapterLinks: step(['ADAPTER_LINKS'], adapterLinks),
    linksChanged: step(['LINKS_CHANGED'], linksChanged),
    foreignAttempts: step(['ADAPTER_FOREIGN_ATTEMPTS'], foreignAttempts),
    limitReprobe: step(['LIMIT_REPROBE'], limitReprobe),
    nextTurn: step(['NEXT_TURN'], nextTurn),
    updateSightings: step(['SIGHTINGS'], updateSightings),
    childConnected: step(['CHILD_CONNECTED'], childConnected),
    childWentIdle: step(['CHILD_LINK_LOST', 'CHILD_IDLE'], childWentIdle),
    childAttemptFailed: step(['CHILD_ATTEMPT_FAILED'], childAttemptFailed),
    childParked: step(['CHILD_PARKED'], childParked),
    childWaitingForSlot: step(['CHILD_WAITING_FOR_SLOT'], childWaitingForSlot),
    childResetting: step(['CHILD_RESETTING'], childResetting),
    rotateOrQueue: step(['ROTATION_REQUESTED'], rotationRequested),
    childEnded: base.enqueueActions(({ context, event, enqueue }) => {
      if (!isChildEnd(event)) return;
      const end = endOf(event);
      apply(enqueue, childEnded(context, event.actorId, end.message, end.cause));
    }),
  },
  guards: {
    bluezUpAtStart: ({ context }) => context.bluezUp,
  },
});

/** The adapter pool machine (docs/architecture.md). */
export const adapterPoolMachine = adapterPoolSetup.createMachine({
  id: 'adapterPool',
  type: 'parallel',
  context: ({ input }) => {
    const adapters: Record<string, PoolAdapter> = {};
    for (const a of input.adapters ?? []) {
      adapters[a.name] = {
        name: a.name,
        present: true,
        powered: a.powered,
        learnedLimit: null,
        suspectedLimit: null,
        recentFailures: 0,
      };
    }
    return {
      adapters,
      ...emptyPoolTables(),
      links: {},
      foreignAttempts: {},
      slotsPerAdapter: input.slotsPerAdapter,
      strategy: input.strategy,
      lastChosen: null,
      bluezUp: input.bluezUp ?? true,
      nextTicket: 0,
      limitReprobeMs: input.limitReprobeMs ?? DEFAULT_LIMIT_REPROBE_MS,
      startsPerTurn: input.startsPerTurn ?? null,
      startedThisTurn: 0,
    };
  },
  entry: 'spawnAdapters',
  states: {
    bluez: {
      initial: 'waiting',
      states: {
        /** org.bluez was not on the bus at start: nothing connects until it comes. */
        waiting: {
          always: { guard: 'bluezUpAtStart', target: 'up' },
          on: { BLUEZ_UP: { target: 'up', actions: 'bluezUp' } },
        },
        up: {
          on: { BLUEZ_DOWN: { target: 'down', actions: 'bluezDown' } },
        },
        /** bluetoothd went away: connecting devices wait in the queue, every adapter is gone. */
        down: {
          on: { BLUEZ_UP: { target: 'up', actions: 'bluezUp' } },
        },
      },
    },
    managing: {
      on: {
        CONNECT_DEVICE: { actions: 'admitDevice' },
        DISCONNECT_DEVICE: { actions: 'releaseDevice' },
        ADAPTER_PRESENT: { actions: 'adapterPresent' },
        ADAPTER_GONE: { actions: 'adapterGone' },
        SIGHTINGS: { actions: 'updateSightings' },
        ADAPTER_LINKS: { actions: 'adapterLinks' },
        LINKS_CHANGED: { actions: 'linksChanged' },
        ADAPTER_FOREIGN_ATTEMPTS: { actions: 'foreignAttempts' },
        LIMIT_REPROBE: { actions: 'limitReprobe' },
        NEXT_TURN: { actions: 'nextTurn' },
        CHILD_CONNECTED: { actions: 'childConnected' },
        CHILD_LINK_LOST: { actions: 'childWentIdle' },
        CHILD_IDLE: { actions: 'childWentIdle' },
        CHILD_ATTEMPT_FAILED: { actions: 'childAttemptFailed' },
        CHILD_PARKED: { actions: 'childParked' },
        CHILD_RESETTING: { actions: 'childResetting' },
        CHILD_WAITING_FOR_SLOT: { actions: 'childWaitingForSlot' },
        ROTATION_REQUESTED: { actions: 'rotateOrQueue' },
        // A child that reached `failed` (attempts exhausted, or cancelled) …
        'xstate.done.actor.*': { actions: 'childEnded' },
        // … and one that crashed: handled here so that it cannot take the pool down (in XState v5
        // a spawned child's error puts its parent in status `error` too).
        'xstate.error.actor.*': { actions: 'childEnded' },
      },
    },
  },
});
