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
 * No I/O: the runtime (src/pool) feeds it the mirror (ADAPTER_PRESENT/GONE, BLUEZ_UP/DOWN,
 * SIGHTINGS, ADAPTER_LINKS: every link BlueZ shows, another service's too, occupies a slot); the children report to it themselves through sendParent (CHILD_CONNECTED,
 * CHILD_LINK_LOST, CHILD_IDLE, CHILD_ATTEMPT_FAILED, CHILD_RESETTING, CHILD_WAITING_FOR_SLOT) and
 * ask for rotation (ROTATION_REQUESTED), which the pool answers with ADAPTER_ASSIGNED or, when no
 * adapter has a free slot, QUEUED_FOR_SLOT (the child parks; one child per device). Each event is
 * one named step of adapter-pool-steps.ts.
 * A child that ends or crashes is caught by the wildcard `xstate.done.actor.*` /
 * `xstate.error.actor.*` handlers: an unhandled child error would take the whole pool down
 * (in XState v5 a spawned child's error puts its parent in status `error` too).
 */
import { enqueueActions, setup, type AnyEventObject } from 'xstate';
import { connectionMachine } from './connection.js';
import type { ConnectionExternalEvent, ConnectionInput, ConnectionOutput } from './connection-contracts.js';
import type { AdapterStrategy, PoolAdapter } from './adapter-pool-logic.js';
import {
  adapterGone,
  adapterLinks,
  foreignAttempts,
  adapterPresent,
  admitDevice,
  bluezDown,
  bluezUp,
  childAttemptFailed,
  childConnected,
  childEnded,
  childResetting,
  childWaitingForSlot,
  childWentIdle,
  limitReprobe,
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
}

/** Default of {@link PoolInput.limitReprobeMs}: ten minutes. */
export const DEFAULT_LIMIT_REPROBE_MS = 600_000;

/** The part of XState's enqueuer the pool uses (typed narrowly; XState's own generic is unwieldy here). */
interface Enqueue {
  assign(assigner: () => PoolContext): void;
  spawnChild(src: 'connection', options: { id: string; input: ConnectionInput }): void;
  sendTo(childId: string, event: ConnectionExternalEvent): void;
  stopChild(childId: string): void;
  emit(event: PoolEmitted): void;
  cancel(id: string): void;
  raise(event: PoolEvent, options: { id: string; delay: number }): void;
}

/**
 * Carries out one step: the next context, the child commands in order, then the emitted events.
 * `enqueue` is XState's enqueuer, narrowed here once (its generic type is unwieldy to spell).
 */
function apply(enqueuer: unknown, result: StepResult): void {
  const enqueue = enqueuer as Enqueue;
  enqueue.assign(() => result.context);
  for (const command of result.commands) {
    switch (command.kind) {
      case 'spawn':
        enqueue.spawnChild('connection', { id: command.childId, input: command.input });
        break;
      case 'send':
        enqueue.sendTo(command.childId, command.event);
        break;
      case 'stop':
        enqueue.stopChild(command.childId);
        break;
      case 'reprobe-later': {
        const id = `limit-reprobe-${command.adapter}`;
        enqueue.cancel(id);
        enqueue.raise({ type: 'LIMIT_REPROBE', name: command.adapter }, { id, delay: command.delayMs });
        break;
      }
    }
  }
  for (const emitted of result.emitted) enqueue.emit(emitted);
}

/** The one kind of child the pool spawns. */
type PoolChildActor = { src: 'connection'; logic: typeof connectionMachine; id: string | undefined };

/** A named pool action: runs one pure step of adapter-pool-steps.ts for the events it handles. */
function step<T extends PoolEvent['type']>(
  types: readonly T[],
  run: (context: PoolContext, event: Extract<PoolEvent, { type: T }>) => StepResult,
) {
  const handles = (event: PoolEvent): event is Extract<PoolEvent, { type: T }> =>
    (types as readonly string[]).includes(event.type);
  return enqueueActions<
    PoolContext,
    PoolEvent,
    undefined,
    PoolEvent,
    PoolChildActor,
    never,
    never,
    never,
    PoolEmitted
  >(({ context, event, enqueue }) => {
    if (handles(event)) apply(enqueue, run(context, event));
  });
}

function describeEnd(event: AnyEventObject): string {
  if (event.type.startsWith('xstate.error.actor.')) {
    const error = (event as { error?: unknown }).error;
    return `the connection actor crashed: ${error instanceof Error ? error.message : String(error)}`;
  }
  const output = (event as { output?: ConnectionOutput }).output;
  return output?.error?.message ?? 'the connection actor ended';
}

/** The child's final error: its output's error, or what crashed it. */
function endCause(event: AnyEventObject): unknown {
  if (event.type.startsWith('xstate.error.actor.')) return (event as { error?: unknown }).error;
  return (event as { output?: ConnectionOutput }).output?.error;
}

/** The pool machine; `connection` is the child logic (the runtime provides it with its I/O). */
export const adapterPoolSetup = setup({
  types: {
    context: {} as PoolContext,
    events: {} as PoolEvent,
    input: {} as PoolInput,
    emitted: {} as PoolEmitted,
  },
  actors: {
    connection: connectionMachine,
  },
  actions: {
    admitDevice: step(['CONNECT_DEVICE'], admitDevice),
    releaseDevice: step(['DISCONNECT_DEVICE'], releaseDevice),
    adapterPresent: step(['ADAPTER_PRESENT'], adapterPresent),
    adapterGone: step(['ADAPTER_GONE'], adapterGone),
    bluezDown: step(['BLUEZ_DOWN'], bluezDown),
    bluezUp: step(['BLUEZ_UP'], bluezUp),
    adapterLinks: step(['ADAPTER_LINKS'], adapterLinks),
    foreignAttempts: step(['ADAPTER_FOREIGN_ATTEMPTS'], foreignAttempts),
    limitReprobe: step(['LIMIT_REPROBE'], limitReprobe),
    updateSightings: step(['SIGHTINGS'], updateSightings),
    childConnected: step(['CHILD_CONNECTED'], childConnected),
    childWentIdle: step(['CHILD_LINK_LOST', 'CHILD_IDLE'], childWentIdle),
    childAttemptFailed: step(['CHILD_ATTEMPT_FAILED'], childAttemptFailed),
    childWaitingForSlot: step(['CHILD_WAITING_FOR_SLOT'], childWaitingForSlot),
    childResetting: step(['CHILD_RESETTING'], childResetting),
    rotateOrQueue: step(['ROTATION_REQUESTED'], rotationRequested),
    childEnded: enqueueActions(({ context, event, enqueue }) => {
      const e = event as AnyEventObject & { actorId?: string };
      const childId = e.actorId ?? e.type.replace(/^xstate\.(done|error)\.actor\./, '');
      apply(enqueue, childEnded(context, childId, describeEnd(e), endCause(e)));
    }),
  },
});

/** The adapter pool machine (docs/architecture.md). */
export const adapterPoolMachine = adapterPoolSetup.createMachine({
  id: 'adapterPool',
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
      devices: {},
      sightings: {},
      links: {},
      foreignAttempts: {},
      slotsPerAdapter: input.slotsPerAdapter,
      strategy: input.strategy,
      lastChosen: null,
      bluezUp: input.bluezUp ?? true,
      nextTicket: 0,
      limitReprobeMs: input.limitReprobeMs ?? DEFAULT_LIMIT_REPROBE_MS,
    };
  },
  initial: 'running',
  states: {
    running: {
      on: {
        CONNECT_DEVICE: { actions: 'admitDevice' },
        DISCONNECT_DEVICE: { actions: 'releaseDevice' },
        ADAPTER_PRESENT: { actions: 'adapterPresent' },
        ADAPTER_GONE: { actions: 'adapterGone' },
        BLUEZ_DOWN: { actions: 'bluezDown' },
        BLUEZ_UP: { actions: 'bluezUp' },
        SIGHTINGS: { actions: 'updateSightings' },
        ADAPTER_LINKS: { actions: 'adapterLinks' },
        ADAPTER_FOREIGN_ATTEMPTS: { actions: 'foreignAttempts' },
        LIMIT_REPROBE: { actions: 'limitReprobe' },
        CHILD_CONNECTED: { actions: 'childConnected' },
        CHILD_LINK_LOST: { actions: 'childWentIdle' },
        CHILD_IDLE: { actions: 'childWentIdle' },
        CHILD_ATTEMPT_FAILED: { actions: 'childAttemptFailed' },
        CHILD_RESETTING: { actions: 'childResetting' },
        CHILD_WAITING_FOR_SLOT: { actions: 'childWaitingForSlot' },
        ROTATION_REQUESTED: { actions: 'rotateOrQueue' },
        // A child that reached `failed` (attempts exhausted, or cancelled) …
        'xstate.done.actor.*': { actions: 'childEnded' },
        // … and one that crashed: handled here so that it cannot take the pool down.
        'xstate.error.actor.*': { actions: 'childEnded' },
      } as never,
    },
  },
});
