/**
 * The adapter pool (SPEC §3): one per process or bus, the parent of one connection actor per device.
 *
 * It owns what a single connection cannot know: which adapter to use (round-robin, or a score of
 * free slots, recent failures and the device's RSSI on that adapter, only among adapters on which
 * BlueZ sees the device), how many links each adapter holds (BlueZ exposes neither the limit nor the
 * usage, user-pain §3), a queue when every adapter that sees a device is full, rotation when a
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
 * (research/ts-stack.md §4).
 */
import { enqueueActions, setup, type AnyEventObject } from 'xstate';
import { connectionMachine } from './connection.js';
import type { ConnectionExternalEvent, ConnectionInput, ConnectionOutput } from './connection-contracts.js';
import type { AdapterStrategy, PoolAdapter } from './adapter-pool-logic.js';
import {
  adapterGone,
  adapterLinks,
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
  /** Links per adapter the pool allows (SPEC §6 default 5; CSR 5, Broadcom/RPi 7). */
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

/** Carries out one step: the next context, the child commands in order, then the emitted events. */
function apply(enqueue: Enqueue, result: StepResult): void {
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
    admitDevice: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'CONNECT_DEVICE') apply(enqueue as unknown as Enqueue, admitDevice(context, event));
    }),
    releaseDevice: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'DISCONNECT_DEVICE')
        apply(enqueue as unknown as Enqueue, releaseDevice(context, event));
    }),
    adapterPresent: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'ADAPTER_PRESENT')
        apply(enqueue as unknown as Enqueue, adapterPresent(context, event));
    }),
    adapterGone: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'ADAPTER_GONE') apply(enqueue as unknown as Enqueue, adapterGone(context, event));
    }),
    bluezDown: enqueueActions(({ context, enqueue }) =>
      apply(enqueue as unknown as Enqueue, bluezDown(context)),
    ),
    bluezUp: enqueueActions(({ context, enqueue }) => apply(enqueue as unknown as Enqueue, bluezUp(context))),
    adapterLinks: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'ADAPTER_LINKS') apply(enqueue as unknown as Enqueue, adapterLinks(context, event));
    }),
    limitReprobe: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'LIMIT_REPROBE') apply(enqueue as unknown as Enqueue, limitReprobe(context, event));
    }),
    updateSightings: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'SIGHTINGS') apply(enqueue as unknown as Enqueue, updateSightings(context, event));
    }),
    childConnected: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'CHILD_CONNECTED')
        apply(enqueue as unknown as Enqueue, childConnected(context, event));
    }),
    childWentIdle: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'CHILD_LINK_LOST' || event.type === 'CHILD_IDLE')
        apply(enqueue as unknown as Enqueue, childWentIdle(context, event));
    }),
    childAttemptFailed: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'CHILD_ATTEMPT_FAILED')
        apply(enqueue as unknown as Enqueue, childAttemptFailed(context, event));
    }),
    childWaitingForSlot: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'CHILD_WAITING_FOR_SLOT')
        apply(enqueue as unknown as Enqueue, childWaitingForSlot(context, event));
    }),
    childResetting: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'CHILD_RESETTING')
        apply(enqueue as unknown as Enqueue, childResetting(context, event));
    }),
    rotateOrQueue: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'ROTATION_REQUESTED')
        apply(enqueue as unknown as Enqueue, rotationRequested(context, event));
    }),
    childEnded: enqueueActions(({ context, event, enqueue }) => {
      const e = event as AnyEventObject & { actorId?: string };
      const childId = e.actorId ?? e.type.replace(/^xstate\.(done|error)\.actor\./, '');
      apply(enqueue as unknown as Enqueue, childEnded(context, childId, describeEnd(e), endCause(e)));
    }),
  },
});

/** The adapter pool machine of SPEC §3. */
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
