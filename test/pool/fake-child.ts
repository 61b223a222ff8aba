/**
 * A scripted stand-in for the connection machine as a pool child: the same input, the same events
 * from the pool (CONNECT, ADAPTER_ASSIGNED, DISCONNECT, CANCEL, QUEUED_FOR_SLOT), the same context
 * fields (adapter, attempts), the same `waiting-for-slot` state, and the same reports through
 * sendParent (CHILD_CONNECTED, CHILD_LINK_LOST, CHILD_IDLE, CHILD_ATTEMPT_FAILED,
 * CHILD_WAITING_FOR_SLOT, CHILD_RESETTING, ROTATION_REQUESTED). The test drives it with TEST_* events.
 */
import { createActor, sendParent, setup, assign, type AnyActorRef } from 'xstate';
import type {
  ConnectionAttempt,
  ConnectionInput,
  ConnectionOutput,
  ConnectionReport,
  FailureClass,
} from '../../src/machines/connection-contracts.js';
import { adapterPoolMachine, type PoolInput } from '../../src/machines/adapter-pool.js';
import type { PoolEmitted } from '../../src/machines/adapter-pool-steps.js';

interface FakeContext {
  address: string;
  adapter: string;
  assignedAdapter: string | null;
  attempts: ConnectionAttempt[];
}

type FakeEvent =
  | { type: 'CONNECT' }
  | { type: 'DISCONNECT' }
  | { type: 'CANCEL'; reason: 'aborted' | 'timed-out' }
  | { type: 'ADAPTER_ASSIGNED'; adapter: string }
  | { type: 'QUEUED_FOR_SLOT'; reason: string }
  | { type: 'TEST_CONNECTED' }
  | { type: 'TEST_FAIL'; failureClass: FailureClass; rotate: boolean; linksOnAdapter?: number }
  | { type: 'TEST_RETRY' }
  /** Escalation chose reset: the child runs the recovery ladder (CHILD_RESETTING running). */
  | { type: 'TEST_RESET' }
  /** The ladder ended (CHILD_RESETTING not running); the child backs off before its next attempt. */
  | { type: 'TEST_RESET_DONE' }
  | { type: 'TEST_LINK_LOST' }
  | { type: 'TEST_CRASH' };

function attempt(context: FakeContext): Partial<FakeContext> {
  const adapter = context.assignedAdapter ?? context.adapter;
  const a: ConnectionAttempt = {
    number: context.attempts.length + 1,
    adapter,
    startedAt: 0,
    durationMs: null,
    outcome: 'pending',
    cause: null,
    escalation: null,
    adopted: false,
  };
  return { adapter, assignedAdapter: null, attempts: [...context.attempts, a] };
}

function endAttempt(context: FakeContext, patch: Partial<ConnectionAttempt>): ConnectionAttempt[] {
  const attempts = [...context.attempts];
  const last = attempts[attempts.length - 1];
  if (last !== undefined) attempts[attempts.length - 1] = { ...last, ...patch };
  return attempts;
}

export const fakeChild = setup({
  types: {
    context: {} as FakeContext,
    events: {} as FakeEvent,
    input: {} as ConnectionInput,
    output: {} as ConnectionOutput,
  },
}).createMachine({
  id: 'connection',
  context: ({ input }) => ({
    address: input.address,
    adapter: input.adapters[0] ?? 'hci0',
    assignedAdapter: null,
    attempts: [],
  }),
  on: {
    ADAPTER_ASSIGNED: { actions: assign({ assignedAdapter: ({ event }) => event.adapter }) },
    TEST_CRASH: {
      actions: () => {
        throw new Error('boom in a child action');
      },
    },
  },
  initial: 'idle',
  output: ({ context }) => ({
    error: new DOMException(`${context.address}: connecting was aborted`, 'AbortError'),
    attempts: context.attempts,
  }),
  states: {
    idle: { on: { CONNECT: { target: 'connecting', actions: assign(({ context }) => attempt(context)) } } },
    connecting: {
      on: {
        TEST_CONNECTED: {
          target: 'connected',
          actions: assign({ attempts: ({ context }) => endAttempt(context, { outcome: 'connected' }) }),
        },
        TEST_FAIL: {
          target: 'backoff',
          actions: [
            assign({
              attempts: ({ context, event }) =>
                endAttempt(context, {
                  outcome: 'failed',
                  cause: { class: event.failureClass, code: 'X', name: 'Error', message: event.failureClass },
                }),
            }),
            sendParent(({ context, event }): ConnectionReport => ({
              type: 'CHILD_ATTEMPT_FAILED',
              address: context.address,
              adapter: context.adapter,
              failureClass: event.failureClass,
              ...(event.linksOnAdapter === undefined ? {} : { linksOnAdapter: event.linksOnAdapter }),
            })),
            sendParent(({ context, event }): ConnectionReport | { type: 'IGNORED' } =>
              event.rotate
                ? {
                    type: 'ROTATION_REQUESTED',
                    address: context.address,
                    fromAdapter: context.adapter,
                    failureClass: event.failureClass,
                  }
                : { type: 'IGNORED' },
            ),
          ],
        },
        CANCEL: 'failed',
        QUEUED_FOR_SLOT: 'waiting-for-slot',
      },
    },
    backoff: {
      on: {
        TEST_RETRY: { target: 'connecting', actions: assign(({ context }) => attempt(context)) },
        TEST_RESET: 'resetting',
        CANCEL: 'failed',
        QUEUED_FOR_SLOT: 'waiting-for-slot',
      },
    },
    resetting: {
      entry: sendParent(({ context }): ConnectionReport => ({
        type: 'CHILD_RESETTING',
        address: context.address,
        adapter: context.adapter,
        running: true,
      })),
      exit: sendParent(({ context }): ConnectionReport => ({
        type: 'CHILD_RESETTING',
        address: context.address,
        adapter: context.adapter,
        running: false,
      })),
      on: {
        TEST_RESET_DONE: 'backoff',
        CANCEL: 'failed',
        QUEUED_FOR_SLOT: 'waiting-for-slot',
      },
    },
    'waiting-for-slot': {
      entry: sendParent(({ context }): ConnectionReport => ({
        type: 'CHILD_WAITING_FOR_SLOT',
        address: context.address,
        adapter: context.adapter,
      })),
      on: {
        ADAPTER_ASSIGNED: {
          target: 'connecting',
          actions: [
            assign({ assignedAdapter: ({ event }) => event.adapter }),
            assign(({ context }) => attempt(context)),
          ],
        },
        CANCEL: 'failed',
      },
    },
    connected: {
      entry: sendParent(({ context }): ConnectionReport => ({
        type: 'CHILD_CONNECTED',
        address: context.address,
        adapter: context.adapter,
      })),
      on: {
        TEST_LINK_LOST: {
          target: 'idle',
          actions: sendParent(({ context }): ConnectionReport => ({
            type: 'CHILD_LINK_LOST',
            address: context.address,
            adapter: context.adapter,
            reason: 'Connected=false',
          })),
        },
        DISCONNECT: {
          target: 'idle',
          actions: sendParent(({ context }): ConnectionReport => ({
            type: 'CHILD_IDLE',
            address: context.address,
            adapter: context.adapter,
          })),
        },
      },
    },
    failed: { type: 'final' },
  },
});

/** A pool over fake children. */
export function startFakePool(input: Partial<PoolInput> = {}) {
  const pool = createActor(adapterPoolMachine.provide({ actors: { connection: fakeChild as never } }), {
    input: {
      slotsPerAdapter: 2,
      strategy: 'round-robin',
      adapters: [
        { name: 'hci0', powered: true },
        { name: 'hci1', powered: true },
      ],
      ...input,
    },
  });
  const emitted: PoolEmitted[] = [];
  pool.on('*', (e) => emitted.push(e as PoolEmitted));
  pool.start();
  const ctx = () => pool.getSnapshot().context;
  const child = (address: string): AnyActorRef => {
    const id = ctx().devices.get(address)?.childId;
    const ref = id == null ? undefined : (pool.getSnapshot().children as Record<string, AnyActorRef>)[id];
    if (ref === undefined) throw new Error(`no child for ${address}`);
    return ref;
  };
  const settings = {
    maxAttempts: 4,
    attemptTimeoutMs: 1000,
    closeInactiveConnections: false,
    escalation: {
      diagnose: true,
      clear: true,
      rotate: true,
      reset: false,
      rotateAfter: 2,
      clearAfter: 4,
      resetAfter: 6,
      resetCooldownMs: 300_000,
      maxLevel: 'reset' as const,
    },
    backoffMs: {},
  };
  return {
    pool,
    emitted,
    ctx,
    child,
    /** Sightings first, then admission (as the runtime does). */
    admit(
      address: string,
      seenBy: Record<string, number | null> = { hci0: -60, hci1: -60 },
      keepAlive = true,
    ) {
      pool.send({ type: 'SIGHTINGS', address, sightings: seenBy });
      pool.send({ type: 'CONNECT_DEVICE', address, settings, keepAlive });
    },
    status: (address: string) => ctx().devices.get(address)?.status,
    adapterOf: (address: string) => ctx().devices.get(address)?.adapter ?? null,
    stop() {
      pool.stop();
    },
  };
}
