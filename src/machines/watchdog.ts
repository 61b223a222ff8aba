/**
 * The notification watchdog: notices a zombie link (BlueZ keeps Connected=true, the device stopped
 * sending, no disconnect ever comes) from data silence. One per connected device; the connection
 * machine invokes it in `connected`, and {@link ConnectionWatchdog} runs the same machine for a
 * device the caller holds through node-ble.
 *
 *   arming → off                 (no timeoutMs: nothing is watched)
 *   arming → watching ⇄ probing → silent → (ACTIVITY) watching
 *
 * Activity is any GATT characteristic Value change under the device (the `listenForActivity` actor
 * turns the mirror's PropertiesChanged signals into ACTIVITY events; nothing is polled) and every
 * ACTIVITY the application sends for data that arrives by other paths. A silence of `timeoutMs`
 * either goes to `probing` (one bounded read of the probe characteristic: an answer is activity) or
 * straight to `silent`, which reports the zombie: the emitted `zombie` event, and ZOMBIE to the parent
 * when one is told to act. Unlike a one-shot timer the watchdog stays alive: data arriving again
 * re-arms it, and the connection machine invokes a fresh one on every (re)connect.
 *
 * No I/O here: the two actors are supplied with `.provide()` (src/actors/watchdog-actors.ts).
 */
import { assign, emit, enqueueActions, fromCallback, fromPromise, setup } from 'xstate';

/** The probe: one characteristic read before a silence is declared a zombie. */
export interface WatchdogProbe {
  /** Characteristic UUID (lower-case, 128-bit) under the device. */
  readonly uuid: string;
  /** Deadline of the read. */
  readonly timeoutMs: number;
}

/** Input of the watchdog machine. */
export interface WatchdogInput {
  readonly address: string;
  /** The adapter the link is on. */
  readonly adapter: string;
  /** Silence that makes a zombie, in ms; `null`: the watchdog is off. */
  readonly timeoutMs: number | null;
  readonly probe?: WatchdogProbe | null;
  /** Send ZOMBIE to the parent actor (true when invoked by the connection machine). */
  readonly notifyParent?: boolean;
}

/** Context of the watchdog machine (plain data). */
export interface WatchdogContext {
  readonly address: string;
  readonly adapter: string;
  readonly timeoutMs: number | null;
  readonly probe: WatchdogProbe | null;
  readonly notifyParent: boolean;
  /** `performance.now()` of the last activity (or of arming). */
  readonly lastActivityAt: number;
  /** Zombies declared by this watchdog so far. */
  readonly zombies: number;
  /** Why the last probe failed, when it did. */
  readonly probeError: string | null;
}

/** Events the watchdog machine accepts. */
export type WatchdogEvent = { type: 'ACTIVITY' };

/** A declared zombie, as emitted and as sent to the parent. */
export interface ZombieReport {
  readonly address: string;
  readonly adapter: string;
  /** Measured silence when the zombie was declared, in ms. */
  readonly silenceMs: number;
  readonly timeoutMs: number;
  /** The probe read was tried (and failed: `probeError`). */
  readonly probed: boolean;
  readonly probeError: string | null;
}

/** What the watchdog machine emits (`actor.on('zombie', …)`). */
export type WatchdogEmitted = { type: 'zombie' } & ZombieReport;

/** What the watchdog machine sends its parent when `notifyParent` is set. */
export type ZombieEvent = { type: 'ZOMBIE' } & ZombieReport;

/** Input of the `probeCharacteristic` actor. */
export interface ProbeInput {
  readonly address: string;
  readonly adapter: string;
  readonly uuid: string;
  readonly timeoutMs: number;
}

/** Input of the `listenForActivity` actor. */
export interface ActivityInput {
  readonly address: string;
  readonly adapter: string;
}

function notProvided(name: string): never {
  throw new Error(`watchdog actor "${name}" is not provided: use the watchdog through the library`);
}

function silenceOf(context: WatchdogContext): number {
  return performance.now() - context.lastActivityAt;
}

function zombieReport(context: WatchdogContext): ZombieReport {
  return {
    address: context.address,
    adapter: context.adapter,
    silenceMs: Math.round(silenceOf(context)),
    timeoutMs: context.timeoutMs ?? 0,
    probed: context.probeError !== null,
    probeError: context.probeError,
  };
}

/** The watchdog machine with its contracts; implementations come from `.provide()`. */
export const watchdogSetup = setup({
  types: {
    context: {} as WatchdogContext,
    events: {} as WatchdogEvent,
    input: {} as WatchdogInput,
    emitted: {} as WatchdogEmitted,
  },
  actors: {
    /** Sends ACTIVITY for every Value change under the device (signal-driven; no D-Bus calls). */
    listenForActivity: fromCallback<WatchdogEvent, ActivityInput>(() => notProvided('listenForActivity')),
    /** One bounded ReadValue of the probe characteristic; resolves when the device answered. */
    probeCharacteristic: fromPromise<void, ProbeInput>(async () => notProvided('probeCharacteristic')),
  },
  guards: {
    watchdogOff: ({ context }) => context.timeoutMs === null,
    silenceReached: ({ context }) => context.timeoutMs !== null && silenceOf(context) >= context.timeoutMs,
    hasProbe: ({ context }) => context.probe !== null,
  },
  delays: {
    /** What is left of the silence allowance since the last activity (re-computed on every pass). */
    silenceLeft: ({ context }) => Math.max(0, (context.timeoutMs ?? 0) - silenceOf(context)),
  },
  actions: {
    noteActivity: assign({ lastActivityAt: () => performance.now(), probeError: null }),
    noteProbeFailure: assign({
      probeError: ({ event }) => {
        const error = (event as { error?: unknown }).error;
        return error instanceof Error ? error.message : String(error);
      },
    }),
    countZombie: assign({ zombies: ({ context }) => context.zombies + 1 }),
    emitZombie: emit(({ context }): WatchdogEmitted => ({ type: 'zombie', ...zombieReport(context) })),
    tellParent: enqueueActions(({ context, enqueue }) => {
      if (!context.notifyParent) return;
      enqueue.sendParent({ type: 'ZOMBIE', ...zombieReport(context) } satisfies ZombieEvent);
    }),
  },
});

/** The notification watchdog machine. */
export const watchdogMachine = watchdogSetup.createMachine({
  id: 'watchdog',
  initial: 'arming',
  context: ({ input }) => ({
    address: input.address,
    adapter: input.adapter,
    timeoutMs: input.timeoutMs,
    probe: input.probe ?? null,
    notifyParent: input.notifyParent ?? false,
    lastActivityAt: performance.now(),
    zombies: 0,
    probeError: null,
  }),
  states: {
    arming: {
      always: [{ guard: 'watchdogOff', target: 'off' }, { target: 'armed' }],
    },
    /** No timeout configured (only the caller knows the device's cadence): nothing runs. */
    off: {},
    armed: {
      initial: 'watching',
      invoke: {
        id: 'listenForActivity',
        src: 'listenForActivity',
        input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
      },
      states: {
        watching: {
          on: { ACTIVITY: { actions: 'noteActivity' } },
          after: {
            silenceLeft: [
              { guard: 'silenceReached', target: 'deciding' },
              // Data came meanwhile: wait for the rest of the new allowance.
              { target: 'watching', reenter: true },
            ],
          },
        },
        deciding: {
          always: [{ guard: 'hasProbe', target: 'probing' }, { target: 'silent' }],
        },
        probing: {
          invoke: {
            id: 'probeCharacteristic',
            src: 'probeCharacteristic',
            input: ({ context }) => ({
              address: context.address,
              adapter: context.adapter,
              uuid: context.probe?.uuid ?? '',
              timeoutMs: context.probe?.timeoutMs ?? 0,
            }),
            // The device answered: the link is alive, only quiet.
            onDone: { target: 'watching', actions: 'noteActivity' },
            onError: { target: 'silent', actions: 'noteProbeFailure' },
          },
          on: { ACTIVITY: { target: 'watching', actions: 'noteActivity' } },
        },
        silent: {
          entry: ['countZombie', 'emitZombie', 'tellParent'],
          // Reported once per silence; data flowing again re-arms it.
          on: { ACTIVITY: { target: 'watching', actions: 'noteActivity' } },
        },
      },
    },
  },
});
