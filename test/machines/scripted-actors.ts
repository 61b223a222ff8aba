/**
 * Test harness for the pure connection machine: every named actor is a scripted fake whose outcomes
 * the test lists in order (resolve, reject, or hang until the machine stops it). Time is vitest's
 * fake timers; the state sequence comes from the inspection stream (transient states included).
 */
import { vi } from 'vitest';
import { createActor, fromPromise, type AnyActorLogic } from 'xstate';
import { connectionMachine } from '../../src/machines/connection.js';
import type { ConnectionInput } from '../../src/machines/connection-contracts.js';
import { DEFAULT_ESCALATION } from '../../src/machines/profiles.js';
import type { LedgerChange } from '../../src/machines/escalation-policy.js';
import { createStateTrail, topLevelState } from '../../src/machines/state-trail.js';

/** One scripted outcome of an actor call. */
export type Outcome = { ok: unknown } | { error: unknown } | 'hang';

export const ok = (value: unknown = undefined): Outcome => ({ ok: value });
export const fail = (error: unknown): Outcome => ({ error });

export type PromiseActorName =
  | 'acquireDeviceLock'
  | 'inspectDevice'
  | 'cancelStalePendingConnect'
  | 'clearDeviceCache'
  | 'releaseBondedPhantom'
  | 'removePhantom'
  | 'awaitDeviceGone'
  | 'rediscoverDevice'
  | 'findDevice'
  | 'connectWithDeadline'
  | 'waitLinkDown'
  | 'validateOnce'
  | 'awaitGattSettled'
  | 'verifiedDisconnect'
  | 'resetAdapter';

/** Default outcome per actor: everything healthy. */
export const HEALTHY: Record<PromiseActorName, Outcome> = {
  acquireDeviceLock: ok({ lease: 'lease-1', slotLease: null, degraded: false, waitedMs: 0 }),
  inspectDevice: ok({ known: true, connected: false, servicesResolved: false }),
  cancelStalePendingConnect: ok(),
  clearDeviceCache: ok(),
  releaseBondedPhantom: ok({ outcome: 'disconnected', known: true }),
  removePhantom: ok(),
  awaitDeviceGone: ok(),
  rediscoverDevice: ok({ reappeared: true }),
  findDevice: ok(),
  connectWithDeadline: ok(),
  // After an RF abort nobody saw the link drop unless a test says so (ok()): the attempt is
  // recorded without linkDownSeen, so the aborted backoff applies.
  waitLinkDown: fail(new Error('link state not observed')),
  validateOnce: ok({ passed: true }),
  awaitGattSettled: ok({ outcome: 'settled' }),
  verifiedDisconnect: ok({ outcome: 'disconnected' }),
  resetAdapter: ok(),
};

export interface Call {
  name: PromiseActorName;
  input: unknown;
  /** Set when the machine stopped the actor before it settled (its AbortSignal fired). */
  aborted: boolean;
}

export interface Harness {
  actor: ReturnType<typeof createActor<typeof connectionMachine>>;
  states: string[];
  calls: Call[];
  releasedLeases: (string | null)[];
  ledgerChanges: LedgerChange[];
  emitted: { type: string }[];
  /** Live watchLink actors (neither resolved nor stopped). */
  liveWatchers: number;
  loseLink(reason?: string): void;
  callsTo(name: PromiseActorName): Call[];
  state(): string;
  /** Advances fake time in small steps until `predicate` holds or `maxMs` passes. */
  runUntil(predicate: () => boolean, maxMs?: number): Promise<void>;
}

export function baseInput(overrides: Partial<ConnectionInput> = {}): ConnectionInput {
  return {
    address: 'AA:BB:CC:DD:EE:01',
    adapters: ['hci0'],
    maxAttempts: 4,
    attemptTimeoutMs: 1000,
    closeInactiveConnections: false,
    escalation: DEFAULT_ESCALATION,
    ...overrides,
  };
}

/** Provides scripted actors to the machine; `script` lists outcomes per actor, then HEALTHY applies. */
export function scriptedLogic(
  script: Partial<Record<PromiseActorName, Outcome[]>>,
  harness: Pick<Harness, 'calls' | 'releasedLeases' | 'ledgerChanges'> & {
    watchers: Set<(reason: string) => void>;
  },
  defaults: Partial<Record<PromiseActorName, Outcome>> = {},
): typeof connectionMachine {
  const queues = new Map<PromiseActorName, Outcome[]>();
  for (const [name, list] of Object.entries(script)) queues.set(name as PromiseActorName, [...(list ?? [])]);
  const scripted = (name: PromiseActorName) =>
    fromPromise<never, unknown>(({ input, signal }) => {
      const call: Call = { name, input, aborted: false };
      harness.calls.push(call);
      const outcome = queues.get(name)?.shift() ?? defaults[name] ?? HEALTHY[name];
      return new Promise<never>((resolve, reject) => {
        const onAbort = (): void => {
          call.aborted = true;
          reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        if (outcome === 'hang') return;
        // Settle on a later tick, like real I/O does.
        queueMicrotask(() => {
          signal.removeEventListener('abort', onAbort);
          if ('ok' in outcome) resolve(outcome.ok as never);
          else reject(outcome.error);
        });
      });
    });
  const names = Object.keys(HEALTHY) as PromiseActorName[];
  const actors = Object.fromEntries(names.map((n) => [n, scripted(n)])) as Record<
    PromiseActorName,
    AnyActorLogic
  >;
  return connectionMachine.provide({
    actors: {
      ...actors,
      // Pending while the link is up; `loseLink` resolves it the way a Connected=false would.
      watchLink: fromPromise<{ reason: string }, unknown>(
        ({ signal }) =>
          new Promise((resolve, reject) => {
            const watcher = (reason: string): void => {
              harness.watchers.delete(watcher);
              resolve({ reason });
            };
            harness.watchers.add(watcher);
            signal.addEventListener(
              'abort',
              () => {
                harness.watchers.delete(watcher);
                reject(signal.reason);
              },
              { once: true },
            );
          }),
      ),
    } as never,
    actions: {
      releaseDeviceLock: (_, params: { lease: string | null }) => {
        harness.releasedLeases.push(params.lease);
      },
      shareLedgerChange: (_, change: LedgerChange) => {
        harness.ledgerChanges.push(change);
      },
    },
  });
}

/** Starts the machine with fake timers already installed by the caller (vi.useFakeTimers()). */
export function startScripted(
  input: ConnectionInput,
  script: Partial<Record<PromiseActorName, Outcome[]>> = {},
  defaults: Partial<Record<PromiseActorName, Outcome>> = {},
): Harness {
  const calls: Call[] = [];
  const releasedLeases: (string | null)[] = [];
  const ledgerChanges: LedgerChange[] = [];
  const watchers = new Set<(reason: string) => void>();
  const logic = scriptedLogic(script, { calls, releasedLeases, ledgerChanges, watchers }, defaults);
  const trail = createStateTrail();
  const actor = createActor(logic, { input, inspect: trail.inspect });
  const emitted: { type: string }[] = [];
  for (const type of ['lock-degraded', 'phantom-left-alone', 'escalation', 'link-lost'] as const) {
    actor.on(type, (e) => emitted.push(e));
  }
  actor.subscribe({ error: () => {} });
  actor.start();
  const harness: Harness = {
    actor,
    states: trail.states,
    calls,
    releasedLeases,
    ledgerChanges,
    emitted,
    get liveWatchers() {
      return watchers.size;
    },
    loseLink(reason = 'Connected=false') {
      for (const w of [...watchers]) w(reason);
    },
    callsTo: (name) => calls.filter((c) => c.name === name),
    state: () => topLevelState(actor.getSnapshot().value),
    async runUntil(predicate, maxMs = 120_000) {
      for (let t = 0; t <= maxMs; t += 10) {
        if (predicate()) return;
        await vi.advanceTimersByTimeAsync(10);
      }
      throw new Error(
        `condition not reached within ${maxMs} ms of fake time; states: ${trail.states.join(' → ')}`,
      );
    },
  };
  return harness;
}
