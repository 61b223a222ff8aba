/**
 * The connection machine (docs/architecture.md): one per device, every BlueZ workaround a named state, guard,
 * delay or actor. No I/O here: the actors are contracts (connection-contracts.ts) implemented in
 * src/actors and swapped in with `.provide()`; the defaults below only say they were not provided.
 *
 *   idle → establishing { locking → clearing-stale → connecting → validating } → connected
 *   inside establishing also: phantom, escalating, resetting, backoff
 *   around it: disconnecting, waiting-for-slot (pooled), failed
 *
 * `establishing` owns what applies to every step of a run, once: cancellation (CANCEL, sent for
 * the caller's AbortSignal by the invoked `watchCallerSignal`), the overall deadline
 * (`after overallDeadline`, overallTimeoutMs from the start of the run) and the pool's
 * QUEUED_FOR_SLOT. Cancellation is not a failed attempt: it leaves through `disconnecting` when our
 * Connect may have left a link or a pending connect (so BlueZ is not left Connected on the adapter
 * actually used), releases the device lock, and ends in `failed` with an AbortError/TimeoutError
 * DOMException. The Python original counted it as an ordinary failed attempt.
 *
 * A parent pool that has no free slot for the device answers with QUEUED_FOR_SLOT: the attempt
 * ends the same way (through `disconnecting` when a link may be open), and the actor waits in
 * `waiting-for-slot` until the pool assigns an adapter, so a device keeps one actor in the pool.
 *
 * State names users see (`topLevelState`, the CLI, logs) are the children of `establishing` and
 * the other top-level states: `establishing` itself is a frame, not a step.
 */
import {
  and,
  assign,
  emit,
  enqueueActions,
  fromCallback,
  fromPromise,
  not,
  or,
  sendParent,
  sendTo,
  setup,
  stateIn,
  type AnyEventObject,
} from 'xstate';
import { ConnectionFailedError, type AttemptRecord } from '../bluez/errors.js';
import {
  DEFAULT_BACKOFF_MS,
  type CancellationReason,
  type BondedPhantomOutput,
  type ClearPhantomOutput,
  type ConnectInput,
  type ConnectionAttempt,
  type ConnectionContext,
  type ConnectionExternalEvent,
  type ConnectionInput,
  type ConnectionOutput,
  type ConnectionReport,
  type DeviceFinding,
  type DeviceOnAdapter,
  type DisconnectInput,
  type DisconnectOutput,
  type FailureCause,
  type FailureClass,
  type GattSettleInput,
  type GattSettleOutput,
  type InspectInput,
  type LinkLossOutput,
  type LockInput,
  type LockOutput,
  type ResetInput,
  type RotationRequest,
  type TeardownReason,
  type ValidateInput,
  type ValidationCheck,
  type ZombieAction,
} from './connection-contracts.js';
import {
  decideEscalation,
  emptyLedger,
  recordFailure,
  recordReset,
  recordSuccess,
  type EscalationAction,
} from './escalation.js';
import type { LedgerChange } from './escalation-policy.js';
import { watchdogMachine, type ZombieReport } from './watchdog.js';
import { linkConfirmedDown, nextAdapterHasFreeSlot, staleConnectCancelledFirst } from './backoff.js';

/** Events the machine emits for observers (`actor.on(type, …)`); the runtime turns them into logs. */
export type ConnectionEmitted =
  | { type: 'lock-degraded'; address: string; adapter: string; waitedMs: number }
  | { type: 'phantom-left-alone'; address: string; adapter: string }
  | { type: 'escalation'; address: string; adapter: string; action: EscalationAction; failures: number }
  | { type: 'link-lost'; address: string; adapter: string; reason: string }
  /** The watchdog declared a zombie; `action` is what follows (see the `watchdog` option). */
  | ({ type: 'zombie'; action: ZombieAction } & ZombieReport);

function notProvided(name: string): never {
  throw new Error(
    `connection actor "${name}" is not provided: create the machine through createConnectionActor()`,
  );
}

const FAILURE_CLASSES = new Set<string>(Object.keys(DEFAULT_BACKOFF_MS));

/** A readable text for a rejection that is not an Error (JSON where it can be, never "[object Object]"). */
function describeValue(value: object): string {
  try {
    return JSON.stringify(value) ?? Object.prototype.toString.call(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** Turns whatever an actor rejected with into plain data (duck-typed on BluezError's fields). */
export function describeFailure(error: unknown, fallbackClass: FailureClass = 'other'): FailureCause {
  if (typeof error === 'object' && error !== null) {
    const e = error as {
      errorClass?: unknown;
      code?: unknown;
      name?: unknown;
      message?: unknown;
      dbusName?: unknown;
      linksOnAdapter?: unknown;
      linkDownSeen?: unknown;
      slotLimit?: unknown;
    };
    const cls =
      typeof e.errorClass === 'string' && FAILURE_CLASSES.has(e.errorClass) ? e.errorClass : fallbackClass;
    const cause: FailureCause = {
      class: cls as FailureClass,
      code: typeof e.code === 'string' ? e.code : 'UNKNOWN',
      name: typeof e.name === 'string' ? e.name : 'Error',
      message: typeof e.message === 'string' ? e.message : describeValue(error),
    };
    return {
      ...cause,
      ...(typeof e.dbusName === 'string' ? { dbusName: e.dbusName } : {}),
      ...(typeof e.linksOnAdapter === 'number' ? { linksOnAdapter: e.linksOnAdapter } : {}),
      ...(e.linkDownSeen === true ? { linkDownSeen: true } : {}),
      ...(typeof e.slotLimit === 'number' ? { slotLimit: e.slotLimit } : {}),
    };
  }
  return { class: fallbackClass, code: 'UNKNOWN', name: 'Error', message: String(error) };
}

function endCurrentAttempt(
  context: ConnectionContext,
  patch: Pick<ConnectionAttempt, 'outcome' | 'cause'> & Partial<ConnectionAttempt>,
): ConnectionAttempt[] {
  const attempts = [...context.attempts];
  const last = attempts[attempts.length - 1];
  if (last === undefined || last.outcome !== 'pending') return attempts;
  attempts[attempts.length - 1] = { ...last, durationMs: Date.now() - last.startedAt, ...patch };
  return attempts;
}

function failureWith(context: ConnectionContext, cause: FailureCause): Partial<ConnectionContext> {
  return {
    attempts: endCurrentAttempt(context, { outcome: 'failed', cause }),
    ledger: recordFailure(context.ledger, context.adapter, cause.class),
    staleInProgress: cause.class === 'inProgress',
  };
}

function lastCause(context: ConnectionContext): FailureCause | null {
  return context.attempts[context.attempts.length - 1]?.cause ?? null;
}

/** The attempts as {@link ConnectionFailedError} lists them. */
export function toAttemptRecords(attempts: readonly ConnectionAttempt[]): AttemptRecord[] {
  return attempts
    .filter((a) => a.cause !== null)
    .map((a) => ({
      attempt: a.number,
      adapter: a.adapter,
      errorClass: a.cause?.class ?? 'other',
      code: a.cause?.code ?? 'UNKNOWN',
      message: `${a.cause?.class ?? 'other'}: ${a.cause?.message ?? ''}`,
    }));
}

function exhaustedError(context: ConnectionContext): ConnectionFailedError {
  const causes = context.attempts
    .filter((a) => a.cause !== null)
    .map((a) => `#${a.number} on ${a.adapter}: ${a.cause?.class} (${a.cause?.message})`)
    .join('; ');
  return new ConnectionFailedError(
    `${context.address}: failed to connect after ${context.attempts.length} attempts: ${causes}`,
    {
      device: context.address,
      adapter: context.adapter,
      attempts: toAttemptRecords(context.attempts),
      errorClass: lastCause(context)?.class ?? 'other',
    },
  );
}

/**
 * The record that starts a reconnect run after an established link ended (number 0: it is not an
 * attempt of the new run, so maxAttempts still counts only real attempts).
 */
function linkEndRecord(context: ConnectionContext, cause: FailureCause): ConnectionAttempt[] {
  return [
    {
      number: 0,
      adapter: context.adapter,
      startedAt: Date.now(),
      durationMs: 0,
      outcome: 'failed',
      cause,
      escalation: null,
      adopted: false,
    },
  ];
}

/** Attempts of the current run (a link-end record is not one). */
function attemptCount(context: ConnectionContext): number {
  return context.attempts.filter((a) => a.number > 0).length;
}

function cancellationError(context: ConnectionContext, reason: CancellationReason): DOMException {
  return reason === 'timed-out'
    ? new DOMException(`${context.address}: not connected within overallTimeoutMs`, 'TimeoutError')
    : new DOMException(`${context.address}: connecting was aborted`, 'AbortError');
}

/** The longest delay a Node.js timer honours (2^31 − 1 ms); a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A report to the parent pool without the fields every report carries (address, adapter). */
export type PoolReport = DistributiveOmit<Exclude<ConnectionReport, RotationRequest>, 'address' | 'adapter'>;

/** The failure report of the attempt that just failed. */
function failureReport(context: ConnectionContext): PoolReport {
  const cause = lastCause(context);
  const links = cause?.linksOnAdapter;
  return {
    type: 'CHILD_ATTEMPT_FAILED',
    failureClass: cause?.class ?? 'other',
    ...(links === undefined ? {} : { linksOnAdapter: links }),
  };
}

/** Why a link ended, from the link watch's failure. */
function watchFailureReason(error: unknown): string {
  return error instanceof Error ? `link watch failed: ${error.message}` : 'link lost';
}

/** The machine with its contracts; implementations come from `.provide()` (see src/actors). */
export const connectionSetup = setup({
  types: {
    context: {} as ConnectionContext,
    events: {} as ConnectionExternalEvent,
    input: {} as ConnectionInput,
    output: {} as ConnectionOutput,
    emitted: {} as ConnectionEmitted,
  },
  actors: {
    /** In-process per-device mutex, then the cross-process connection slot (flock) on the attempt's adapter. */
    acquireDeviceLock: fromPromise<LockOutput, LockInput>(async () => notProvided('acquireDeviceLock')),
    /** Reads Device1 (Connected, ServicesResolved) for the phantom and adoption checks. */
    inspectDevice: fromPromise<DeviceFinding, InspectInput>(async () => notProvided('inspectDevice')),
    /** A pending connect BlueZ still holds (InProgress seen) is cancelled with a bounded Disconnect. */
    cancelStalePendingConnect: fromPromise<void, DeviceOnAdapter>(async () =>
      notProvided('cancelStalePendingConnect'),
    ),
    /** Escalation "clear": RemoveDevice, then wait (bounded) for discovery to bring the device back. */
    clearDeviceCache: fromPromise<void, DeviceOnAdapter>(async () => notProvided('clearDeviceCache')),
    /**
     * Phantom, paired device: a bounded Disconnect first (to keep the bond), RemoveDevice as the
     * fallback (verified disconnect).
     */
    releaseBondedPhantom: fromPromise<BondedPhantomOutput, DeviceOnAdapter>(async () =>
      notProvided('releaseBondedPhantom'),
    ),
    /** Phantom: RemoveDevice (bounded); on a connected device bluetoothd disconnects it first. */
    removePhantom: fromPromise<void, DeviceOnAdapter>(async () => notProvided('removePhantom')),
    /** Until the mirror no longer shows the device (RemoveDevice replies before the object goes). */
    awaitDeviceGone: fromPromise<void, DeviceOnAdapter>(async () => notProvided('awaitDeviceGone')),
    /** Discovery until the device is known again on the adapter (bounded by rediscoveryTimeoutMs). */
    rediscoverDevice: fromPromise<ClearPhantomOutput, DeviceOnAdapter>(async () =>
      notProvided('rediscoverDevice'),
    ),
    /**
     * BlueZ must know the device on the adapter before Device1.Connect: discovery until it is seen
     * (bounded by rediscoveryTimeoutMs); rejects with a notFound error when it is not.
     */
    findDevice: fromPromise<void, DeviceOnAdapter>(async () => notProvided('findDevice')),
    /** Device1.Connect, then ServicesResolved; the machine's `after` is the per-attempt deadline. */
    connectWithDeadline: fromPromise<void, ConnectInput>(async () => notProvided('connectWithDeadline')),
    /** Resolves when BlueZ shows the device's link down (Connected=false, or the object gone). */
    waitLinkDown: fromPromise<void, DeviceOnAdapter>(async () => notProvided('waitLinkDown')),
    /**
     * One validation check: GATT not empty, then the user validator. Resolves with what is missing
     * (and how long the late-GATT budget still allows waiting for it); rejects when the validator
     * throws. Its AbortSignal fires when `validating.checking` ends (deadline, cancellation).
     */
    validateOnce: fromPromise<ValidationCheck, ValidateInput>(async () => notProvided('validateOnce')),
    /** Waits until the device's GATT tree changed and settled, or the link dropped (bounded). */
    awaitGattSettled: fromPromise<GattSettleOutput, GattSettleInput>(async () =>
      notProvided('awaitGattSettled'),
    ),
    /** Disconnect with deadline, wait for Connected=false, RemoveDevice fallback. */
    verifiedDisconnect: fromPromise<DisconnectOutput, DisconnectInput>(async () =>
      notProvided('verifiedDisconnect'),
    ),
    /** Adapter recovery; a D-Bus power cycle until the reset-ladder issue replaces it. */
    resetAdapter: fromPromise<void, ResetInput>(async () => notProvided('resetAdapter')),
    /** Resolves when Connected goes false or the device object disappears (link loss, bluetoothd restart). */
    watchLink: fromPromise<LinkLossOutput, DeviceOnAdapter>(async () => notProvided('watchLink')),
    /**
     * Sends CANCEL (reason `aborted`) when the caller's AbortSignal fires, at once when it already
     * has. The runtime provides it for an actor made with a `signal`; by default it does nothing.
     */
    watchCallerSignal: fromCallback<AnyEventObject>(() => () => {}),
    /**
     * The notification watchdog (src/machines/watchdog.ts): silence of `watchdog.timeoutMs` sends
     * ZOMBIE. Off (idle, no listener) without a watchdog configuration.
     */
    notificationWatchdog: watchdogMachine,
  },
  guards: {
    lockWasDegraded: (_, lock: LockOutput) => lock.degraded,
    /** The lock itself failed (strict timeout, a refused lock path, no permission): not an attempt to retry. */
    isLockFailure: (_, params: { error: unknown }) => {
      const error: unknown = params.error;
      if (typeof error !== 'object' || error === null || !('code' in error)) return false;
      return typeof error.code === 'string' && error.code.startsWith('LOCK_');
    },
    // Both read the inspection that just finished (guards run before the transition's actions).
    isPhantom: (_, finding: DeviceFinding) => finding.connected && !finding.servicesResolved,
    isHealthyConnection: (_, finding: DeviceFinding) => finding.connected && finding.servicesResolved,
    mayCloseInactiveConnections: ({ context }) => context.closeInactiveConnections,
    phantomIsBonded: ({ context }) => context.finding?.paired === true,
    /** The bonded phantom's link is gone and BlueZ still knows the device: connect again at once. */
    bondKeptAndKnown: (_, out: BondedPhantomOutput) => out.outcome !== 'removed' && out.known,
    bondedPhantomRemoved: (_, out: BondedPhantomOutput) => out.outcome === 'removed',
    sawStaleInProgress: ({ context }) => context.staleInProgress,
    cacheClearRequested: ({ context }) => context.clearCacheNext,
    attemptsExhausted: ({ context }) => attemptCount(context) >= context.maxAttempts,
    /** A standalone actor with keep-alive reconnects after link loss (a pool decides for its children). */
    keepsAlive: ({ context }) => context.keepAlive && !context.pooled,
    zombieOnlyReported: ({ context }) => context.watchdog?.action === 'report',
    reconnectsAfterZombie: ({ context }) =>
      context.teardown === 'zombie' &&
      context.keepAlive &&
      !context.pooled &&
      context.watchdog?.action === 'reconnect',
    /** The escalation step decided on entering `escalating` (one decision per failure). */
    decisionIs: ({ context }, params: { action: EscalationAction }) => context.decision === params.action,
    /** Rotation was decided and a parent pool chooses the adapter. */
    rotationIsThePools: ({ context }) => context.decision === 'rotate' && context.pooled,
    /** The pool parks this actor during backoffs (no slot held; CHILD_PARKED). */
    parksDuringBackoff: ({ context }) => context.parkDuringBackoff,
    linkMayBeOpen: ({ context }) => context.linkMayBeOpen,
    /** The attempt is still looking for the device (no Connect sent yet). */
    stillSearching: stateIn('#connection.establishing.connecting.searching'),
    cancellationArrived: ({ context }) => context.cancellation !== null,
    queuedForSlot: ({ context }) => context.queuedForSlot,
    disconnectWasRequested: ({ context }) => context.teardown === 'requested',
    hasOverallDeadline: ({ context }) => context.deadlineAt !== null,
    /** `disconnecting` tears down part of a run that has an overall deadline (not a requested disconnect). */
    teardownOfRunWithDeadline: ({ context }) =>
      context.deadlineAt !== null && context.teardown !== 'requested',
    // No backoff where BlueZ already gave the answer the wait is for (src/machines/backoff.ts).
    linkConfirmedDown: ({ context }) => linkConfirmedDown(context),
    staleConnectCancelledFirst: ({ context }) => staleConnectCancelledFirst(context),
    /** Out of slots, and rotation already chose another configured adapter with a free slot. */
    rotatedToAdapterWithFreeSlot: ({ context }) => nextAdapterHasFreeSlot(context, context.assignedAdapter),
    /** Out of slots, and the pool assigns another adapter (a pool assigns only one with a free slot). */
    assignedAdapterHasFreeSlot: ({ context }, params: { adapter: string }) =>
      nextAdapterHasFreeSlot(context, params.adapter),
    teardownEndsFailedAttempt: ({ context }) =>
      context.teardown === 'validation-failed' || context.teardown === 'attempt-deadline',
    validationPassed: (_, check: ValidationCheck) => check.passed,
    /** BlueZ no longer knows the device when the Connect is to be sent (removed, expired). */
    deviceUnknown: (_, params: { error: unknown }) => describeFailure(params.error).class === 'notFound',
    /**
     * An RF abort (le-connection-abort-by-local): the link is briefly up (docs/errors.md,
     * `aborted`), and a retry must not meet it.
     */
    rfAborted: (_, params: { error: unknown }) => describeFailure(params.error).class === 'aborted',
    /**
     * bluetoothd reports a controller that refuses a link for lack of resources (HCI 0x0d) with the
     * text of an RF abort; with the adapter's other links at the slot limit in force, it is that.
     */
    abortWasSlotRefusal: ({ context }) => {
      const held = context.heldFailure;
      return (
        held !== null &&
        held.linksOnAdapter !== undefined &&
        held.slotLimit !== undefined &&
        held.linksOnAdapter >= held.slotLimit
      );
    },
    /** Something the check needs is missing and the late-GATT budget allows waiting for it. */
    lateGattBudgetLeft: (_, check: ValidationCheck) => !check.passed && check.nextCheckInMs !== null,
    linkDropped: (_, settle: GattSettleOutput) => settle.outcome === 'disconnected',
  },
  delays: {
    /**
     * attemptTimeoutMs (docs/defaults.md): a Connect that never replies must not hold the attempt,
     * and neither must one validation check (a validator that never resolves).
     */
    attemptDeadline: ({ context }) => context.attemptTimeoutMs,
    /** docs/errors.md: the wait before the next attempt depends on why the last one failed. */
    backoffForErrorClass: ({ context }) => context.backoffMs[lastCause(context)?.class ?? 'other'],
    /**
     * What is left of overallTimeoutMs for this run (0 when it has passed). Without an overall
     * deadline the timer is the longest Node allows and its transition is guarded off.
     */
    overallDeadline: ({ context }) =>
      context.deadlineAt === null
        ? MAX_TIMER_MS
        : Math.min(MAX_TIMER_MS, Math.max(0, context.deadlineAt - Date.now())),
    /**
     * A backstop for one phantom-clearing step whose D-Bus calls are each bounded by
     * disconnectTimeoutMs (the bonded one makes up to three): twice that plus a second.
     */
    phantomStepDeadline: ({ context }) => 2 * context.disconnectTimeoutMs + 1000,
    /** A backstop for the rediscovery after RemoveDevice (bounded by rediscoveryTimeoutMs itself). */
    rediscoveryDeadline: ({ context }) => context.rediscoveryTimeoutMs + 1000,
    /** disconnectTimeoutMs: how long an RF-aborted link may take to show Connected=false. */
    linkDownDeadline: ({ context }) => context.disconnectTimeoutMs,
    /** The next late-GATT checkpoint (lateGattDelaysMs, docs/defaults.md), as the check reported it. */
    lateGattCheckpoint: ({ context }) => context.lateGattWaitMs,
  },
  actions: {
    startFresh: assign(({ context }) => ({
      attempts: [],
      cancellation: null,
      queuedForSlot: false,
      error: null,
      teardown: null,
      staleInProgress: false,
      decision: null,
      deadlineAt: context.overallTimeoutMs === null ? null : Date.now() + context.overallTimeoutMs,
    })),
    /** A reconnect run (keep-alive, zombie) gets its own overallTimeoutMs. */
    armOverallDeadline: assign(({ context }) => ({
      deadlineAt: context.overallTimeoutMs === null ? null : Date.now() + context.overallTimeoutMs,
    })),
    clearOverallDeadline: assign({ deadlineAt: null }),
    beginAttempt: assign(({ context }) => {
      const adapter = context.assignedAdapter ?? context.adapter;
      const attempt: ConnectionAttempt = {
        number: attemptCount(context) + 1,
        adapter,
        startedAt: Date.now(),
        durationMs: null,
        outcome: 'pending',
        cause: null,
        escalation: null,
        adopted: false,
      };
      return { adapter, assignedAdapter: null, attempts: [...context.attempts, attempt], teardown: null };
    }),
    takeLease: assign((_, lock: LockOutput) => ({ lease: lock.lease, slotLease: lock.slotLease })),
    reportDegradedLock: emit(({ context }, lock: LockOutput) => ({
      type: 'lock-degraded' as const,
      address: context.address,
      adapter: context.adapter,
      waitedMs: lock.waitedMs,
    })),
    failWithLockError: assign((_, params: { error: unknown }) => ({
      error: params.error instanceof Error ? params.error : new Error(String(params.error)),
    })),
    /** Releases the per-device lock (implemented by the runtime; the lease id is the parameter). */
    releaseDeviceLock: (_, _params: { lease: string | null }) => {},
    forgetLease: assign({ lease: null }),
    forgetSlotLease: assign({ slotLease: null }),
    recordFinding: assign((_, finding: DeviceFinding) => ({ finding })),
    forgetStaleInProgress: assign({ staleInProgress: false }),
    forgetDiagnoseRequest: assign({ diagnoseNext: false }),
    forgetCacheClearRequest: assign({ clearCacheNext: false }),
    markAdopted: assign({
      attempts: ({ context }) => {
        const attempts = [...context.attempts];
        const last = attempts[attempts.length - 1];
        if (last !== undefined) attempts[attempts.length - 1] = { ...last, adopted: true };
        return attempts;
      },
      linkMayBeOpen: true,
    }),
    recordAttemptFailure: assign(({ context }, params: { error: unknown }) =>
      failureWith(context, describeFailure(params.error)),
    ),
    holdFailure: assign((_, params: { error: unknown }) => ({ heldFailure: describeFailure(params.error) })),
    markHeldLinkDown: assign(({ context }) => ({
      heldFailure: context.heldFailure === null ? null : { ...context.heldFailure, linkDownSeen: true },
    })),
    /** The RF abort as it is (retried at once when the link was seen down: src/machines/backoff.ts). */
    recordHeldFailure: assign(({ context }) => ({
      ...failureWith(context, context.heldFailure ?? describeFailure(undefined)),
      heldFailure: null,
    })),
    /** The RF abort at the slot limit: out of slots (escalation rotates instead of retrying here). */
    recordHeldFailureAsOutOfSlots: assign(({ context }) => {
      const held = context.heldFailure ?? describeFailure(undefined);
      return {
        ...failureWith(context, {
          ...held,
          class: 'outOfSlots',
          code: 'OUT_OF_SLOTS',
          name: 'OutOfSlotsError',
          message: `${held.message} (${context.adapter} holds ${held.linksOnAdapter} other links, limit ${held.slotLimit})`,
        }),
        heldFailure: null,
      };
    }),
    recordValidationFailure: assign(({ context }, params: { error: unknown }) => {
      const cause = describeFailure(params.error, 'validation');
      // ValidationError carries class `other` among the BlueZ classes (docs/errors.md); here it is
      // its own class so escalation and reports can tell "connected but useless" from a connect error.
      return failureWith(
        context,
        cause.code === 'VALIDATION_FAILED' ? { ...cause, class: 'validation' } : cause,
      );
    }),
    beginValidation: assign({ validationStartedAt: () => Date.now(), validationMiss: null }),
    /** What the check found missing, and how long to wait for it. */
    noteValidationMiss: assign((_, check: ValidationCheck) =>
      check.passed ? {} : { validationMiss: check.reason, lateGattWaitMs: check.nextCheckInMs ?? 0 },
    ),
    /** Still missing when the late-GATT budget is spent. */
    recordValidationMiss: assign(({ context }, check: ValidationCheck) => {
      const reason = check.passed ? 'passed' : check.reason;
      const waitedMs = context.validationStartedAt === null ? 0 : Date.now() - context.validationStartedAt;
      return failureWith(context, {
        class: 'validation',
        code: 'VALIDATION_FAILED',
        name: 'ValidationError',
        message:
          `${context.address} on ${context.adapter} failed validation: ${reason}` +
          (waitedMs > 0 ? ` (also after waiting ${waitedMs} ms for late GATT services)` : ''),
      });
    }),
    recordValidationDeadline: assign(({ context }) =>
      failureWith(context, {
        class: 'validation',
        code: 'VALIDATION_DEADLINE',
        name: 'TimeoutError',
        message:
          `${context.address} on ${context.adapter}: the validation check did not finish within ` +
          `attemptTimeoutMs (${context.attemptTimeoutMs} ms); the validator's signal was aborted`,
      }),
    ),
    recordLinkDroppedDuringValidation: assign(({ context }) =>
      failureWith(context, {
        class: 'notConnected',
        code: 'NOT_CONNECTED',
        name: 'NotConnectedError',
        message: `the link to ${context.address} on ${context.adapter} dropped during validation`,
      }),
    ),
    /** A phantom-clearing step outlived its deadline. */
    recordPhantomStepDeadline: assign(({ context }, params: { step: string }) =>
      failureWith(context, {
        class: 'noReply',
        code: 'PHANTOM_STEP_DEADLINE',
        name: 'TimeoutError',
        message: `clearing the phantom of ${context.address} on ${context.adapter}: ${params.step} did not finish in time`,
      }),
    ),
    recordAttemptDeadline: assign(({ context }) =>
      failureWith(context, {
        class: 'noReply',
        code: 'ATTEMPT_DEADLINE',
        name: 'TimeoutError',
        message: `no connection within attemptTimeoutMs (${context.attemptTimeoutMs} ms) on ${context.adapter}`,
      }),
    ),
    // The attempt deadline ended the device search: the device was not found (`notFound` of docs/errors.md,
    // with its own backoff), whoever's deadline ended the search.
    recordSearchDeadline: assign(({ context }) =>
      failureWith(context, {
        class: 'notFound',
        code: 'DEVICE_NOT_FOUND',
        name: 'DeviceNotFoundError',
        message: `${context.address} was not found on ${context.adapter} within attemptTimeoutMs (${context.attemptTimeoutMs} ms)`,
      }),
    ),
    recordPhantomLeftAlone: assign(({ context }) =>
      failureWith(context, {
        class: 'phantom',
        code: 'PHANTOM_CONNECTION',
        name: 'PhantomConnection',
        message:
          `Connected without ServicesResolved on ${context.adapter}; left alone because closeInactiveConnections ` +
          'is off (another process may own this link)',
      }),
    ),
    reportPhantomLeftAlone: emit(({ context }) => ({
      type: 'phantom-left-alone' as const,
      address: context.address,
      adapter: context.adapter,
    })),
    recordAttemptSuccess: assign(({ context }) => ({
      attempts: endCurrentAttempt(context, { outcome: 'connected', cause: null }),
      ledger: recordSuccess(context.ledger, context.adapter),
      staleInProgress: false,
    })),
    /** Applies a ledger change to a shared EscalationPolicy (implemented by the runtime). */
    shareLedgerChange: (_, _change: LedgerChange) => {},
    markLinkMayBeOpen: assign({ linkMayBeOpen: true }),
    markLinkClosed: assign({ linkMayBeOpen: false }),
    setTeardown: assign((_, params: { reason: TeardownReason }) => ({ teardown: params.reason })),
    recordCancellation: assign(({ context }, params: { reason: CancellationReason }) => ({
      cancellation: context.cancellation ?? params.reason,
      attempts: endCurrentAttempt(context, { outcome: 'cancelled', cause: null }),
    })),
    recordQueuedForSlot: assign(({ context }) => ({
      queuedForSlot: true,
      attempts: endCurrentAttempt(context, { outcome: 'requeued', cause: null }),
    })),
    failWithCancellation: assign(({ context }) => ({
      error: cancellationError(context, context.cancellation ?? 'aborted'),
    })),
    failWithExhaustedAttempts: assign(({ context }) => ({ error: exhaustedError(context) })),
    /**
     * The escalation decision for the failure just recorded, taken once (one clock read) and kept
     * in context: every transition out of `escalating` reads this answer.
     */
    decideOnce: assign(({ context }) => ({
      decision: decideEscalation(context.escalation, context.ledger, {
        adapter: context.adapter,
        failureClass: lastCause(context)?.class ?? 'other',
        now: Date.now(),
        canRotate: context.pooled || context.adapters.length > 1,
      }),
    })),
    noteEscalation: assign(({ context }) => {
      const attempts = [...context.attempts];
      const last = attempts[attempts.length - 1];
      if (last !== undefined) attempts[attempts.length - 1] = { ...last, escalation: context.decision };
      return { attempts };
    }),
    reportEscalation: emit(({ context }) => ({
      type: 'escalation' as const,
      address: context.address,
      adapter: context.adapter,
      action: context.decision ?? 'retry',
      failures: context.ledger.failures[context.adapter] ?? 0,
    })),
    markDiagnoseNext: assign({ diagnoseNext: true }),
    markClearCacheNext: assign({ clearCacheNext: true }),
    rotateToNextConfiguredAdapter: assign(({ context }) => {
      const index = context.adapters.indexOf(context.adapter);
      return { assignedAdapter: context.adapters[(index + 1) % context.adapters.length] ?? context.adapter };
    }),
    requestRotationFromPool: sendParent(({ context }): RotationRequest => ({
      type: 'ROTATION_REQUESTED',
      address: context.address,
      fromAdapter: context.adapter,
      failureClass: lastCause(context)?.class ?? null,
    })),
    adoptAssignedAdapter: assign((_, params: { adapter: string }) => ({ assignedAdapter: params.adapter })),
    recordResetAttempt: assign(({ context }) => ({
      ledger: recordReset(context.ledger, context.adapter, Date.now()),
    })),
    forwardActivity: sendTo('watchdog', { type: 'ACTIVITY' }),
    reportZombie: emit(({ context, event }) => {
      const report: ZombieReport =
        event.type === 'ZOMBIE'
          ? event
          : {
              address: context.address,
              adapter: context.adapter,
              silenceMs: 0,
              timeoutMs: 0,
              probed: false,
              probeError: null,
            };
      return {
        type: 'zombie' as const,
        address: report.address,
        adapter: report.adapter,
        silenceMs: report.silenceMs,
        timeoutMs: report.timeoutMs,
        probed: report.probed,
        probeError: report.probeError,
        action: context.watchdog?.action ?? 'report',
      };
    }),
    /** The zombie is a failed attempt of class `zombie` (escalation counts it) and starts a new run. */
    recordZombie: assign(({ context, event }) => {
      const silence = event.type === 'ZOMBIE' ? event : undefined;
      const probe = silence?.probed ? `; the probe read failed: ${silence.probeError ?? ''}` : '';
      const cause: FailureCause = {
        class: 'zombie',
        code: 'ZOMBIE_LINK',
        name: 'ZombieLink',
        message: `Connected but no data for ${silence?.silenceMs ?? '?'} ms (watchdog timeoutMs ${silence?.timeoutMs ?? '?'})${probe}`,
      };
      return {
        attempts: linkEndRecord(context, cause),
        ledger: recordFailure(context.ledger, context.adapter, 'zombie'),
      };
    }),
    /** A lost link starts a reconnect run; not counted by escalation (the device may have left). */
    recordLinkLoss: assign(({ context }, params: { reason: string }) => ({
      attempts: linkEndRecord(context, {
        class: 'notConnected',
        code: 'LINK_LOST',
        name: 'LinkLost',
        message: params.reason,
      }),
    })),
    reportLinkLoss: emit(({ context }, params: { reason: string }) => ({
      type: 'link-lost' as const,
      address: context.address,
      adapter: context.adapter,
      reason: params.reason,
    })),
    /**
     * What a pooled actor tells its parent pool (ConnectionReport), with its address and adapter;
     * a standalone actor has no parent to tell, and only a parked one reports CHILD_PARKED.
     */
    tellPool: enqueueActions(({ context, enqueue }, report: PoolReport) => {
      if (!context.pooled) return;
      if (report.type === 'CHILD_PARKED' && !context.parkDuringBackoff) return;
      const full: ConnectionReport = { ...report, address: context.address, adapter: context.adapter };
      enqueue.sendParent(full);
    }),
  },
});

/** The cross-process slot goes back as soon as this attempt no longer needs it. */
const releaseSlot = [
  {
    type: 'releaseDeviceLock',
    params: ({ context }: { context: ConnectionContext }) => ({ lease: context.slotLease }),
  },
  'forgetSlotLease',
] as const;

const releaseLock = [
  ...releaseSlot,
  {
    type: 'releaseDeviceLock',
    params: ({ context }: { context: ConnectionContext }) => ({ lease: context.lease }),
  },
  'forgetLease',
] as const;

const shareFailure = {
  type: 'shareLedgerChange',
  params: ({ context }: { context: ConnectionContext }): LedgerChange => ({
    kind: 'failure',
    adapter: context.adapter,
    failureClass: lastCause(context)?.class ?? 'other',
  }),
} as const;

/** A reset attempt (done or failed) starts the adapter's cooldown in a shared policy too. */
const shareReset = {
  type: 'shareLedgerChange',
  params: ({ context }: { context: ConnectionContext }): LedgerChange => ({
    kind: 'reset',
    adapter: context.adapter,
    at: Date.now(),
  }),
} as const;

/** A failed attempt: the shared escalation policy and a parent pool hear of it. */
const countFailure = [
  shareFailure,
  { type: 'tellPool', params: ({ context }: { context: ConnectionContext }) => failureReport(context) },
] as const;

/** The failed attempt's error (an actor's rejection) as the failure record's parameter. */
const errorOf = ({ event }: { event: { error: unknown } }) => ({ error: event.error });

/** An attempt that failed with an actor's rejection goes to escalation. */
const attemptFailed = {
  target: '#connection.establishing.escalating',
  actions: [{ type: 'recordAttemptFailure', params: errorOf }, ...countFailure],
} as const;

/**
 * The established link ended (Connected=false, the device object gone, LINK_LOST): with keep-alive
 * a standalone actor reconnects after the class's backoff (a new run, with its own overall
 * deadline), else it is idle.
 */
function linkEnded<E>(reasonOf: (event: E) => string) {
  const reason = ({ event }: { event: E }) => ({ reason: reasonOf(event) });
  return [
    {
      guard: 'keepsAlive',
      target: '#connection.establishing.backoff',
      actions: [
        'markLinkClosed',
        'armOverallDeadline',
        { type: 'reportLinkLoss', params: reason },
        { type: 'recordLinkLoss', params: reason },
      ],
    },
    {
      target: '#connection.idle',
      actions: [
        'markLinkClosed',
        { type: 'reportLinkLoss', params: reason },
        {
          type: 'tellPool',
          params: ({ event }: { event: E }): PoolReport => ({
            type: 'CHILD_LINK_LOST',
            reason: reasonOf(event),
          }),
        },
      ],
    },
  ] as const;
}

/** A validation check failed for good: tear the link down, then escalation. */
const validationFailedBy = <A>(record: A) =>
  ({
    target: '#connection.disconnecting',
    actions: [record, ...countFailure, { type: 'setTeardown', params: { reason: 'validation-failed' } }],
  }) as const;

/** A step that records the caller's AbortSignal or overallTimeoutMs as CANCEL. */
const cancelledBy = {
  type: 'recordCancellation',
  params: ({ event }: { event: { reason: CancellationReason } }) => ({ reason: event.reason }),
} as const;

/** A phantom-clearing step outlived its deadline: a failed attempt. */
const phantomStepTimedOut = (step: string) =>
  ({
    target: '#connection.establishing.escalating',
    actions: [{ type: 'recordPhantomStepDeadline', params: { step } }, ...countFailure],
  }) as const;

/** The overall deadline passed: recorded like a CANCEL for `timed-out`. */
const timedOut = { type: 'recordCancellation', params: { reason: 'timed-out' } } as const;

/** The connection machine (docs/architecture.md). */
export const connectionMachine = connectionSetup.createMachine({
  id: 'connection',
  initial: 'idle',
  context: ({ input }) => ({
    address: input.address,
    adapters: [...input.adapters],
    pooled: input.pooled ?? false,
    parkDuringBackoff: (input.pooled ?? false) && (input.parkDuringBackoff ?? false),
    adapter: input.adapters[0] ?? 'hci0',
    assignedAdapter: null,
    maxAttempts: input.maxAttempts,
    attemptTimeoutMs: input.attemptTimeoutMs,
    closeInactiveConnections: input.closeInactiveConnections,
    escalation: input.escalation,
    ledger: input.ledger ?? emptyLedger(),
    backoffMs: { ...DEFAULT_BACKOFF_MS, ...input.backoffMs },
    attempts: [],
    lease: null,
    slotLease: null,
    staleInProgress: false,
    diagnoseNext: false,
    clearCacheNext: false,
    linkMayBeOpen: false,
    teardown: null,
    cancellation: null,
    queuedForSlot: false,
    finding: null,
    error: null,
    watchdog: input.watchdog ?? null,
    keepAlive: input.keepAlive ?? false,
    overallTimeoutMs: input.overallTimeoutMs ?? null,
    deadlineAt: null,
    decision: null,
    validationStartedAt: null,
    validationMiss: null,
    lateGattWaitMs: 0,
    disconnectTimeoutMs: input.disconnectTimeoutMs ?? 5000,
    rediscoveryTimeoutMs: input.rediscoveryTimeoutMs ?? 10_000,
    heldFailure: null,
  }),
  on: {
    ADAPTER_ASSIGNED: {
      actions: { type: 'adoptAssignedAdapter', params: ({ event }) => ({ adapter: event.adapter }) },
    },
  },
  output: ({ context }) => ({
    error: context.error ?? new Error('connection machine ended without an error'),
    attempts: context.attempts,
  }),
  states: {
    idle: {
      entry: [...releaseLock],
      on: {
        CONNECT: { target: 'establishing', actions: ['startFresh', 'beginAttempt'] },
      },
    },
    /**
     * One run of attempts, from CONNECT (or a pool's assignment, or a reconnect) to `connected`,
     * `failed` or `waiting-for-slot`. Cancellation, the overall deadline and queueing are handled
     * here once for every step.
     */
    establishing: {
      initial: 'locking',
      invoke: { id: 'watchCallerSignal', src: 'watchCallerSignal' },
      after: {
        // overallTimeoutMs: the run ends as if cancelled, with a TimeoutError.
        overallDeadline: [
          {
            guard: and(['hasOverallDeadline', 'linkMayBeOpen']),
            target: 'disconnecting',
            actions: [timedOut, { type: 'setTeardown', params: { reason: 'cancelled' } }],
          },
          { guard: 'hasOverallDeadline', target: 'failed', actions: [timedOut, 'failWithCancellation'] },
        ],
      },
      on: {
        // Tear down what our Connect may have opened (a link, a pending connect), else end at once.
        CANCEL: [
          {
            guard: 'linkMayBeOpen',
            target: 'disconnecting',
            actions: [cancelledBy, { type: 'setTeardown', params: { reason: 'cancelled' } }],
          },
          { target: 'failed', actions: [cancelledBy, 'failWithCancellation'] },
        ],
        // The same for the pool's "no slot for you": then wait for one.
        QUEUED_FOR_SLOT: [
          {
            guard: 'linkMayBeOpen',
            target: 'disconnecting',
            actions: ['recordQueuedForSlot', { type: 'setTeardown', params: { reason: 'requeued' } }],
          },
          { target: 'waiting-for-slot', actions: 'recordQueuedForSlot' },
        ],
      },
      states: {
        locking: {
          invoke: {
            id: 'acquireDeviceLock',
            src: 'acquireDeviceLock',
            input: ({ context }) => ({
              address: context.address,
              adapter: context.adapter,
              lease: context.lease,
            }),
            // The lock's output reaches the guard and actions as typed params (no event casts).
            onDone: [
              {
                guard: { type: 'lockWasDegraded', params: ({ event }) => event.output },
                target: 'clearing-stale',
                actions: [
                  { type: 'takeLease', params: ({ event }) => event.output },
                  { type: 'reportDegradedLock', params: ({ event }) => event.output },
                ],
              },
              {
                target: 'clearing-stale',
                actions: { type: 'takeLease', params: ({ event }) => event.output },
              },
            ],
            onError: [
              {
                guard: { type: 'isLockFailure', params: errorOf },
                target: '#connection.failed',
                actions: [
                  { type: 'recordAttemptFailure', params: errorOf },
                  { type: 'failWithLockError', params: errorOf },
                ],
              },
              attemptFailed,
            ],
          },
        },
        'clearing-stale': {
          initial: 'inspecting',
          states: {
            inspecting: {
              invoke: {
                id: 'inspectDevice',
                src: 'inspectDevice',
                input: ({ context }) => ({
                  address: context.address,
                  adapter: context.adapter,
                  thorough: context.diagnoseNext,
                }),
                onDone: [
                  // Order matters: a phantom must never be adopted as a live connection (the upstream
                  // library adopts any Connected device; bleak-retry-connector#231).
                  {
                    guard: { type: 'isPhantom', params: ({ event }) => event.output },
                    target: '#connection.establishing.phantom',
                    actions: [
                      { type: 'recordFinding', params: ({ event }) => event.output },
                      'forgetDiagnoseRequest',
                    ],
                  },
                  {
                    guard: { type: 'isHealthyConnection', params: ({ event }) => event.output },
                    target: '#connection.establishing.validating',
                    actions: [
                      { type: 'recordFinding', params: ({ event }) => event.output },
                      'forgetDiagnoseRequest',
                      'markAdopted',
                    ],
                  },
                  {
                    guard: 'sawStaleInProgress',
                    target: 'cancelling-stale-connect',
                    actions: [
                      { type: 'recordFinding', params: ({ event }) => event.output },
                      'forgetDiagnoseRequest',
                    ],
                  },
                  {
                    guard: 'cacheClearRequested',
                    target: 'clearing-device-cache',
                    actions: [
                      { type: 'recordFinding', params: ({ event }) => event.output },
                      'forgetDiagnoseRequest',
                    ],
                  },
                  {
                    target: '#connection.establishing.connecting',
                    actions: [
                      { type: 'recordFinding', params: ({ event }) => event.output },
                      'forgetDiagnoseRequest',
                    ],
                  },
                ],
                onError: attemptFailed,
              },
            },
            'cancelling-stale-connect': {
              invoke: {
                id: 'cancelStalePendingConnect',
                src: 'cancelStalePendingConnect',
                input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
                onDone: { target: '#connection.establishing.connecting', actions: 'forgetStaleInProgress' },
                onError: {
                  target: '#connection.establishing.escalating',
                  actions: [
                    'forgetStaleInProgress',
                    { type: 'recordAttemptFailure', params: errorOf },
                    ...countFailure,
                  ],
                },
              },
            },
            'clearing-device-cache': {
              invoke: {
                id: 'clearDeviceCache',
                src: 'clearDeviceCache',
                input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
                onDone: { target: '#connection.establishing.connecting', actions: 'forgetCacheClearRequest' },
                onError: {
                  target: '#connection.establishing.escalating',
                  actions: [
                    'forgetCacheClearRequest',
                    { type: 'recordAttemptFailure', params: errorOf },
                    ...countFailure,
                  ],
                },
              },
            },
          },
        },
        /**
         * Connected without ServicesResolved. Cleared step by step (opt-in), each step bounded:
         * for a paired device a Disconnect first to keep the bond, else RemoveDevice; then the
         * object must be gone from the mirror and discovered again before the next Connect.
         */
        phantom: {
          initial: 'deciding',
          states: {
            deciding: {
              always: [
                {
                  // Without the opt-in the phantom is reported and left alone: it may be another
                  // process's link that is still resolving services (bleak-retry-connector#226, #231).
                  guard: not('mayCloseInactiveConnections'),
                  target: '#connection.establishing.escalating',
                  actions: ['recordPhantomLeftAlone', ...countFailure, 'reportPhantomLeftAlone'],
                },
                { guard: 'phantomIsBonded', target: 'releasing-bond' },
                { target: 'removing' },
              ],
            },
            'releasing-bond': {
              invoke: {
                id: 'releaseBondedPhantom',
                src: 'releaseBondedPhantom',
                input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
                onDone: [
                  {
                    guard: { type: 'bondKeptAndKnown', params: ({ event }) => event.output },
                    target: '#connection.establishing.connecting',
                  },
                  {
                    guard: { type: 'bondedPhantomRemoved', params: ({ event }) => event.output },
                    target: 'awaiting-removal',
                  },
                  { target: 'rediscovering' },
                ],
                onError: attemptFailed,
              },
              after: { phantomStepDeadline: phantomStepTimedOut('the Disconnect of the paired device') },
            },
            removing: {
              invoke: {
                id: 'removePhantom',
                src: 'removePhantom',
                input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
                onDone: { target: 'awaiting-removal' },
                onError: attemptFailed,
              },
              after: { phantomStepDeadline: phantomStepTimedOut('RemoveDevice') },
            },
            'awaiting-removal': {
              invoke: {
                id: 'awaitDeviceGone',
                src: 'awaitDeviceGone',
                input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
                onDone: { target: 'rediscovering' },
                onError: attemptFailed,
              },
              after: { phantomStepDeadline: phantomStepTimedOut('the removal of the device object') },
            },
            rediscovering: {
              invoke: {
                id: 'rediscoverDevice',
                src: 'rediscoverDevice',
                input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
                // Found or not: connecting.searching looks again within the attempt deadline.
                onDone: { target: '#connection.establishing.connecting' },
                onError: attemptFailed,
              },
              after: { rediscoveryDeadline: { target: '#connection.establishing.connecting' } },
            },
          },
        },
        connecting: {
          entry: 'markLinkMayBeOpen',
          initial: 'searching',
          states: {
            /** Until BlueZ knows the device on this adapter (at once when it already does). */
            searching: {
              invoke: {
                id: 'findDevice',
                src: 'findDevice',
                input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
                onDone: { target: 'requesting' },
                onError: attemptFailed,
              },
            },
            requesting: {
              invoke: {
                id: 'connectWithDeadline',
                src: 'connectWithDeadline',
                input: ({ context }) => ({
                  address: context.address,
                  adapter: context.adapter,
                  timeoutMs: context.attemptTimeoutMs,
                }),
                onDone: { target: '#connection.establishing.validating' },
                onError: [
                  // The device object went away before the Connect (removed, expired): find it
                  // again, within the same attempt deadline.
                  { guard: { type: 'deviceUnknown', params: errorOf }, target: 'searching' },
                  {
                    guard: { type: 'rfAborted', params: errorOf },
                    target: 'awaiting-link-down',
                    actions: { type: 'holdFailure', params: errorOf },
                  },
                  attemptFailed,
                ],
              },
            },
            /**
             * After an RF abort the link is briefly up: BlueZ's Connected=false is the earliest
             * moment a retry cannot meet the old link (the backoff is then skipped), bounded by
             * disconnectTimeoutMs.
             */
            'awaiting-link-down': {
              invoke: {
                id: 'waitLinkDown',
                src: 'waitLinkDown',
                input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
                onDone: { target: 'classifying-abort', actions: 'markHeldLinkDown' },
                onError: { target: 'classifying-abort' },
              },
              after: { linkDownDeadline: { target: 'classifying-abort' } },
            },
            /** An RF abort at the adapter's slot limit is a refusal for lack of slots. */
            'classifying-abort': {
              always: [
                {
                  guard: 'abortWasSlotRefusal',
                  target: '#connection.establishing.escalating',
                  actions: ['recordHeldFailureAsOutOfSlots', ...countFailure],
                },
                {
                  target: '#connection.establishing.escalating',
                  actions: ['recordHeldFailure', ...countFailure],
                },
              ],
            },
          },
          after: {
            attemptDeadline: [
              {
                // No Connect was sent: nothing to tear down, and the device was simply not found.
                guard: 'stillSearching',
                target: 'escalating',
                actions: ['recordSearchDeadline', ...countFailure],
              },
              {
                target: '#connection.disconnecting',
                actions: [
                  'recordAttemptDeadline',
                  ...countFailure,
                  { type: 'setTeardown', params: { reason: 'attempt-deadline' } },
                ],
              },
            ],
          },
        },
        validating: {
          // Connected: the slot limits concurrent connect attempts, and validation (late GATT waits of
          // up to 14 s) is not one. The Python library releases it here too.
          entry: [...releaseSlot, 'beginValidation'],
          initial: 'checking',
          states: {
            /**
             * GATT not empty, then the caller's validator, bounded by attemptTimeoutMs: a validator
             * that never resolves ends the attempt (its signal aborted) instead of holding the lock.
             */
            checking: {
              invoke: {
                id: 'validateOnce',
                src: 'validateOnce',
                input: ({ context }) => ({
                  address: context.address,
                  adapter: context.adapter,
                  startedAt: context.validationStartedAt ?? Date.now(),
                }),
                onDone: [
                  {
                    guard: { type: 'validationPassed', params: ({ event }) => event.output },
                    target: '#connection.connected',
                  },
                  {
                    // Only missing services/characteristics are worth waiting for (late GATT).
                    guard: { type: 'lateGattBudgetLeft', params: ({ event }) => event.output },
                    target: 'waiting-for-late-gatt',
                    actions: { type: 'noteValidationMiss', params: ({ event }) => event.output },
                  },
                  validationFailedBy({
                    type: 'recordValidationMiss',
                    params: ({ event }: { event: { output: ValidationCheck } }) => event.output,
                  }),
                ],
                // A validator that threw (a failed read, a bug) fails the attempt at once.
                onError: validationFailedBy({ type: 'recordValidationFailure', params: errorOf }),
              },
              after: { attemptDeadline: validationFailedBy('recordValidationDeadline') },
            },
            /**
             * Late GATT (Telink-style chips export services 2–10 s after ServicesResolved; a Service
             * Changed removes objects one by one before the new ones appear): check again once the
             * GATT tree changed and settled, or at the next lateGattDelaysMs checkpoint.
             */
            'waiting-for-late-gatt': {
              invoke: {
                id: 'awaitGattSettled',
                src: 'awaitGattSettled',
                input: ({ context }) => ({
                  address: context.address,
                  adapter: context.adapter,
                  // A backstop: the state's `after lateGattCheckpoint` ends the wait first.
                  timeoutMs: context.lateGattWaitMs + 1000,
                }),
                onDone: [
                  {
                    guard: { type: 'linkDropped', params: ({ event }) => event.output },
                    ...validationFailedBy('recordLinkDroppedDuringValidation'),
                  },
                  { target: 'checking' },
                ],
                onError: validationFailedBy({ type: 'recordValidationFailure', params: errorOf }),
              },
              after: { lateGattCheckpoint: { target: 'checking' } },
            },
          },
        },
        escalating: {
          entry: 'decideOnce',
          always: [
            {
              guard: 'attemptsExhausted',
              target: '#connection.failed',
              actions: 'failWithExhaustedAttempts',
            },
            {
              guard: { type: 'decisionIs', params: { action: 'reset' } },
              target: 'resetting',
              actions: ['noteEscalation', 'reportEscalation'],
            },
            {
              guard: { type: 'decisionIs', params: { action: 'clear' } },
              target: 'backoff',
              actions: ['noteEscalation', 'reportEscalation', 'markClearCacheNext'],
            },
            {
              guard: 'rotationIsThePools',
              target: 'backoff',
              actions: ['noteEscalation', 'reportEscalation', 'requestRotationFromPool'],
            },
            {
              guard: { type: 'decisionIs', params: { action: 'rotate' } },
              target: 'backoff',
              actions: ['noteEscalation', 'reportEscalation', 'rotateToNextConfiguredAdapter'],
            },
            {
              guard: { type: 'decisionIs', params: { action: 'diagnose' } },
              target: 'backoff',
              actions: ['noteEscalation', 'reportEscalation', 'markDiagnoseNext'],
            },
            { target: 'backoff', actions: ['noteEscalation', 'reportEscalation'] },
          ],
        },
        resetting: {
          // A pool must not move a child away while the ladder has its adapter powered off.
          entry: { type: 'tellPool', params: { type: 'CHILD_RESETTING', running: true } },
          exit: { type: 'tellPool', params: { type: 'CHILD_RESETTING', running: false } },
          invoke: {
            id: 'resetAdapter',
            src: 'resetAdapter',
            input: ({ context }) => ({ adapter: context.adapter }),
            // Success or failure, the cooldown starts (docs/errors.md, Escalation): a failing reset
            // must not be retried on every following failure.
            onDone: { target: 'backoff', actions: ['recordResetAttempt', shareReset] },
            onError: { target: 'backoff', actions: ['recordResetAttempt', shareReset] },
          },
        },
        backoff: {
          // The failed attempt has been handled (teardown, escalation, reset): the wait itself needs no
          // slot, and holding one through it would only keep other services from connecting.
          entry: [...releaseSlot],
          initial: 'choosing',
          states: {
            // No wait where it cannot help: the RF-aborted link is confirmed down, the stale pending
            // connect is cancelled first anyway, or the next attempt goes to an adapter with a free
            // slot (src/machines/backoff.ts). Decided before any timer starts.
            choosing: {
              always: [
                {
                  guard: or([
                    'linkConfirmedDown',
                    'staleConnectCancelledFirst',
                    'rotatedToAdapterWithFreeSlot',
                  ]),
                  target: '#connection.establishing.locking',
                  actions: 'beginAttempt',
                },
                { target: 'waiting' },
              ],
            },
            // A parked actor holds no slot while it waits (CHILD_PARKED) and asks the pool for one
            // when the wait ends, its attempts kept (waiting-for-slot without QUEUED_FOR_SLOT).
            waiting: {
              entry: { type: 'tellPool', params: { type: 'CHILD_PARKED' } },
              after: {
                backoffForErrorClass: [
                  { guard: 'parksDuringBackoff', target: '#connection.waiting-for-slot' },
                  { target: '#connection.establishing.locking', actions: 'beginAttempt' },
                ],
              },
            },
          },
          on: {
            // Otherwise the machine-wide handler only records the assignment for the next attempt.
            ADAPTER_ASSIGNED: {
              guard: {
                type: 'assignedAdapterHasFreeSlot',
                params: ({ event }) => ({ adapter: event.adapter }),
              },
              target: 'locking',
              actions: [
                { type: 'adoptAssignedAdapter', params: ({ event }) => ({ adapter: event.adapter }) },
                'beginAttempt',
              ],
            },
          },
        },
      },
    },
    connected: {
      entry: [
        'recordAttemptSuccess',
        'clearOverallDeadline',
        {
          type: 'shareLedgerChange',
          params: ({ context }: { context: ConnectionContext }): LedgerChange => ({
            kind: 'success',
            adapter: context.adapter,
          }),
        },
        ...releaseLock,
        { type: 'tellPool', params: { type: 'CHILD_CONNECTED' } },
      ],
      invoke: [
        {
          id: 'watchLink',
          src: 'watchLink',
          input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
          onDone: [...linkEnded(({ output }: { output: LinkLossOutput }) => output.reason)],
          // A watcher that fails (the bus went away) can no longer vouch for the link: treat it as
          // lost rather than let the error take the actor, and a parent pool, down.
          onError: [...linkEnded(({ error }: { error: unknown }) => watchFailureReason(error))],
        },
        {
          // A fresh watchdog on every (re)connect, on the adapter of this link.
          id: 'watchdog',
          src: 'notificationWatchdog',
          input: ({ context }) => ({
            address: context.address,
            adapter: context.adapter,
            timeoutMs: context.watchdog?.timeoutMs ?? null,
            probe: context.watchdog?.probe ?? null,
            notifyParent: true,
          }),
        },
      ],
      on: {
        DISCONNECT: {
          target: 'disconnecting',
          actions: { type: 'setTeardown', params: { reason: 'requested' } },
        },
        LINK_LOST: [...linkEnded(({ reason }: { reason: string }) => reason)],
        ACTIVITY: { actions: 'forwardActivity' },
        ZOMBIE: [
          { guard: 'zombieOnlyReported', actions: 'reportZombie' },
          {
            // Verified disconnect on the adapter of this link, then reconnect or idle.
            target: 'disconnecting',
            actions: [
              'reportZombie',
              'recordZombie',
              shareFailure,
              'armOverallDeadline',
              { type: 'setTeardown', params: { reason: 'zombie' } },
            ],
          },
        ],
      },
    },
    disconnecting: {
      invoke: [
        {
          id: 'verifiedDisconnect',
          src: 'verifiedDisconnect',
          input: ({ context }) => ({
            address: context.address,
            adapter: context.adapter,
            reason: context.teardown ?? 'requested',
          }),
          onDone: [
            {
              guard: 'cancellationArrived',
              target: 'failed',
              actions: ['markLinkClosed', 'failWithCancellation'],
            },
            { guard: 'queuedForSlot', target: 'waiting-for-slot', actions: 'markLinkClosed' },
            {
              guard: 'teardownEndsFailedAttempt',
              target: '#connection.establishing.escalating',
              actions: 'markLinkClosed',
            },
            {
              guard: 'reconnectsAfterZombie',
              target: '#connection.establishing.escalating',
              actions: 'markLinkClosed',
            },
            {
              target: 'idle',
              actions: ['markLinkClosed', { type: 'tellPool', params: { type: 'CHILD_IDLE' } }],
            },
          ],
          // A disconnect that could not be verified is still the end of this teardown: the next
          // attempt's inspection (or the caller) sees what BlueZ really holds.
          onError: [
            { guard: 'cancellationArrived', target: 'failed', actions: 'failWithCancellation' },
            { guard: 'queuedForSlot', target: 'waiting-for-slot' },
            { guard: 'teardownEndsFailedAttempt', target: '#connection.establishing.escalating' },
            { guard: 'reconnectsAfterZombie', target: '#connection.establishing.escalating' },
            { target: 'idle', actions: { type: 'tellPool', params: { type: 'CHILD_IDLE' } } },
          ],
        },
        // Tearing down a failed attempt is still part of the run: the caller's signal applies.
        { id: 'watchCallerSignal', src: 'watchCallerSignal' },
      ],
      after: {
        // So does the overall deadline (a requested disconnect has none: `connected` cleared it).
        overallDeadline: {
          guard: 'teardownOfRunWithDeadline',
          actions: timedOut,
        },
      },
      on: {
        // A requested disconnect of an established link is not a connect to cancel.
        CANCEL: { guard: not('disconnectWasRequested'), actions: cancelledBy },
        // Tearing down a failed attempt: wait for a slot afterwards instead of escalating.
        QUEUED_FOR_SLOT: { guard: 'teardownEndsFailedAttempt', actions: 'recordQueuedForSlot' },
      },
    },
    'waiting-for-slot': {
      // Nothing held: no lock (another actor of this device may connect meanwhile), no link, no
      // timer. The pool hands out the freed slot, oldest waiting device first.
      entry: [...releaseLock, { type: 'tellPool', params: { type: 'CHILD_WAITING_FOR_SLOT' } }],
      on: {
        ADAPTER_ASSIGNED: [
          // Queued for a slot (QUEUED_FOR_SLOT): a new run. After a parked backoff: the same run.
          {
            guard: 'queuedForSlot',
            target: 'establishing.locking',
            actions: [
              { type: 'adoptAssignedAdapter', params: ({ event }) => ({ adapter: event.adapter }) },
              'startFresh',
              'beginAttempt',
            ],
          },
          {
            target: 'establishing.locking',
            actions: [
              { type: 'adoptAssignedAdapter', params: ({ event }) => ({ adapter: event.adapter }) },
              'beginAttempt',
            ],
          },
        ],
        CANCEL: { target: 'failed', actions: [cancelledBy, 'failWithCancellation'] },
      },
    },
    failed: {
      type: 'final',
      entry: [...releaseLock],
    },
  },
});
