/**
 * One adapter (an org.bluez Adapter1 object) as the adapter pool sees it: an actor the pool spawns
 * per adapter (id `adapter:<name>`), whose states are its slot accounting and the slot limit the
 * pool learned for it (docs/architecture.md, "The adapter pool").
 *
 * Two regions:
 * - `availability`: `gone` (no Adapter1 object, or bluetoothd away), `off` (present, unpowered),
 *   `resetting` (a child's recovery ladder runs on it: it may power it off or re-plug it meanwhile),
 *   `on`, with `free` / `full` (the slots in use against the limit in force).
 * - `limit`: `configured` (the pool's `slotsPerAdapter`), `suspected` (one refusal that looked like
 *   a full controller, not yet confirmed), `learned` (the controller refused at a lower count; after
 *   `limitReprobeMs` the actor asks the pool to try the configured limit again: LIMIT_REPROBE).
 *
 * BlueZ exposes neither a controller's link limit nor its usage (docs/bluez-facts.md): the pool
 * counts the links (its own devices, other services' links, other processes' attempts) and judges
 * refused links (src/machines/adapter-pool-logic.ts); it sends this actor the result of every step
 * that changes it (ADAPTER_STATUS), and the actor's states follow from it. The actor owns the
 * re-probe timer: the pool learns of its end from the actor (LIMIT_REPROBE, sendParent).
 */
import { assign, not, sendParent, setup } from 'xstate';

/** What the pool knows about one adapter after a step (plain data). */
export interface AdapterStatus {
  /** The Adapter1 object is on the bus (and org.bluez is up). */
  readonly present: boolean;
  readonly powered: boolean;
  /** Children running the recovery ladder on this adapter. */
  readonly resets: number;
  /** Slots in use: our devices holding one, other services' links, other processes' attempts. */
  readonly inUse: number;
  /** The configured limit (`slotsPerAdapter`). */
  readonly configuredLimit: number;
  /** A limit learned from refused links, or null. */
  readonly learnedLimit: number | null;
  /** The link count of one unconfirmed refusal, or null. */
  readonly suspectedLimit: number | null;
}

/** Input of the adapter machine. */
export interface AdapterInput {
  readonly name: string;
  /** How long a learned limit holds before the pool re-probes the configured one (ms, >= 1). */
  readonly limitReprobeMs: number;
  readonly status: AdapterStatus;
}

/** Context of the adapter machine. */
export interface AdapterContext extends AdapterStatus {
  readonly name: string;
  readonly limitReprobeMs: number;
  /** The learned limit whose re-probe timer runs (state `limit.learned`), or null. */
  readonly timerFor: number | null;
}

/** Events the adapter actor accepts: the pool's figures after a step that changed them. */
export type AdapterEvent = { readonly type: 'ADAPTER_STATUS' } & AdapterStatus;

/** What the adapter actor tells its parent pool: its learned limit's time is up. */
export interface LimitReprobeReport {
  readonly type: 'LIMIT_REPROBE';
  readonly name: string;
}

/** The limit in force: the configured one, lowered by a learned one. */
export function limitInForce(status: AdapterStatus): number {
  return status.learnedLimit === null
    ? status.configuredLimit
    : Math.min(status.learnedLimit, status.configuredLimit);
}

/** The id of the adapter actor of `name` among the pool's children. */
export function adapterActorId(name: string): string {
  return `adapter:${name}`;
}

export const adapterSetup = setup({
  types: {
    context: {} as AdapterContext,
    events: {} as AdapterEvent,
    input: {} as AdapterInput,
  },
  guards: {
    isGone: ({ context }) => !context.present,
    isUnpowered: ({ context }) => context.present && !context.powered,
    isResetting: ({ context }) => context.resets > 0,
    isUsable: ({ context }) => context.present && context.powered,
    isFull: ({ context }) => context.inUse >= limitInForce(context),
    hasLearnedLimit: ({ context }) => context.learnedLimit !== null,
    hasSuspicion: ({ context }) => context.learnedLimit === null && context.suspectedLimit !== null,
    /** A limit was learned, or a lower one replaced it: its re-probe timer starts again. */
    learnedAnother: ({ context }) =>
      context.learnedLimit !== null && context.learnedLimit !== context.timerFor,
  },
  actions: {
    takeStatus: assign(({ event }) => ({
      present: event.present,
      powered: event.powered,
      resets: event.resets,
      inUse: event.inUse,
      configuredLimit: event.configuredLimit,
      learnedLimit: event.learnedLimit,
      suspectedLimit: event.suspectedLimit,
    })),
    startTimerForLimit: assign(({ context }) => ({ timerFor: context.learnedLimit })),
    askForReprobe: sendParent(({ context }): LimitReprobeReport => ({
      type: 'LIMIT_REPROBE',
      name: context.name,
    })),
  },
  delays: {
    limitReprobe: ({ context }) => context.limitReprobeMs,
  },
});

/** The adapter machine (docs/architecture.md). */
export const adapterMachine = adapterSetup.createMachine({
  id: 'adapter',
  type: 'parallel',
  context: ({ input }) => ({
    name: input.name,
    limitReprobeMs: input.limitReprobeMs,
    timerFor: null,
    ...input.status,
  }),
  on: {
    // The figures are taken at the root; each region's eventless transitions then settle on the
    // states they say (so a state can never disagree with the figures the pool sent).
    ADAPTER_STATUS: { actions: 'takeStatus' },
  },
  states: {
    availability: {
      initial: 'settling',
      states: {
        /** Transient: the start, and the way out of `resetting`. */
        settling: {
          always: [
            { guard: 'isResetting', target: 'resetting' },
            { guard: 'isGone', target: 'gone' },
            { guard: 'isUnpowered', target: 'off' },
            { target: 'on' },
          ],
        },
        gone: {
          always: [
            { guard: 'isResetting', target: 'resetting' },
            { guard: 'isUnpowered', target: 'off' },
            { guard: 'isUsable', target: 'on' },
          ],
        },
        off: {
          always: [
            { guard: 'isResetting', target: 'resetting' },
            { guard: 'isGone', target: 'gone' },
            { guard: 'isUsable', target: 'on' },
          ],
        },
        // A ladder may power the adapter off or re-plug it: the adapter stays `resetting` until
        // every ladder on it has ended, whatever happens to it meanwhile.
        resetting: {
          always: { guard: not('isResetting'), target: 'settling' },
        },
        on: {
          initial: 'free',
          always: [
            { guard: 'isResetting', target: 'resetting' },
            { guard: 'isGone', target: 'gone' },
            { guard: 'isUnpowered', target: 'off' },
          ],
          states: {
            free: { always: { guard: 'isFull', target: 'full' } },
            full: { always: { guard: not('isFull'), target: 'free' } },
          },
        },
      },
    },
    limit: {
      initial: 'settling',
      states: {
        settling: {
          always: [
            { guard: 'hasLearnedLimit', target: 'learned' },
            { guard: 'hasSuspicion', target: 'suspected' },
            { target: 'configured' },
          ],
        },
        configured: {
          always: [
            { guard: 'hasLearnedLimit', target: 'learned' },
            { guard: 'hasSuspicion', target: 'suspected' },
          ],
        },
        suspected: {
          always: [
            { guard: 'hasLearnedLimit', target: 'learned' },
            { guard: not('hasSuspicion'), target: 'configured' },
          ],
        },
        learned: {
          entry: 'startTimerForLimit',
          always: [
            { guard: not('hasLearnedLimit'), target: 'settling' },
            // Another (lower) limit was learned: its time starts now.
            { guard: 'learnedAnother', target: 'learned', reenter: true },
          ],
          after: { limitReprobe: { actions: 'askForReprobe' } },
        },
      },
    },
  },
});
