/**
 * The connection machine (docs/architecture.md): one per device, every BlueZ workaround a named state, guard,
 * delay or actor. No I/O here: the actors are contracts (connection-contracts.ts) implemented in
 * src/actors and swapped in with `.provide()`; the defaults below only say they were not provided.
 *
 *   idle → locking → clearing-stale → connecting → validating → connected
 *   around them: phantom, escalating, resetting, backoff, disconnecting, failed, and (pooled)
 *   waiting-for-slot
 *
 * Cancellation (CANCEL, sent for an AbortSignal or overallTimeoutMs) is not a failed attempt: it
 * leaves through `disconnecting` when our Connect may have left a link or a pending connect (so
 * BlueZ is not left Connected on the adapter actually used), releases the device lock, and ends in
 * `failed` with an AbortError/TimeoutError DOMException. The Python original counted it as an
 * ordinary failed attempt.
 *
 * A parent pool that has no free slot for the device answers with QUEUED_FOR_SLOT: the attempt
 * ends the same way (through `disconnecting` when a link may be open), and the actor waits in
 * `waiting-for-slot` until the pool assigns an adapter, so a device keeps one actor in the pool.
 */
import {
  and,
  assign,
  emit,
  enqueueActions,
  fromPromise,
  not,
  or,
  sendParent,
  sendTo,
  setup,
  stateIn,
} from 'xstate';
import { ConnectionFailedError, type AttemptRecord } from '../bluez/errors.js';
import {
  DEFAULT_BACKOFF_MS,
  type CancellationReason,
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
  type InspectInput,
  type LinkLossOutput,
  type LockInput,
  type LockOutput,
  type ResetInput,
  type RotationRequest,
  type TeardownReason,
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

function decide(context: ConnectionContext): EscalationAction {
  return decideEscalation(context.escalation, context.ledger, {
    adapter: context.adapter,
    failureClass: lastCause(context)?.class ?? 'other',
    now: Date.now(),
    canRotate: context.pooled || context.adapters.length > 1,
  });
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

/** Why the link ended, from LINK_LOST, the link watch's output, or its failure. */
function linkLossReason(event: unknown): string {
  const e = event as { reason?: string; output?: LinkLossOutput; error?: unknown };
  return (
    e.reason ??
    e.output?.reason ??
    (e.error instanceof Error ? `link watch failed: ${e.error.message}` : 'link lost')
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
     * RemoveDevice (bounded; for a paired device a bounded Disconnect first, to keep the bond),
     * then wait for the device to reappear.
     */
    clearPhantom: fromPromise<ClearPhantomOutput, DeviceOnAdapter>(async () => notProvided('clearPhantom')),
    /**
     * BlueZ must know the device on the adapter before Device1.Connect: discovery until it is seen
     * (bounded by rediscoveryTimeoutMs); rejects with a notFound error when it is not.
     */
    findDevice: fromPromise<void, DeviceOnAdapter>(async () => notProvided('findDevice')),
    /** Device1.Connect, then ServicesResolved; the machine's `after` is the per-attempt deadline. */
    connectWithDeadline: fromPromise<void, ConnectInput>(async () => notProvided('connectWithDeadline')),
    /** GATT not empty + the user validator, retried at growing delays for services that appear late. */
    validateWithLateGattRetry: fromPromise<void, DeviceOnAdapter>(async () =>
      notProvided('validateWithLateGattRetry'),
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
     * The notification watchdog (src/machines/watchdog.ts): silence of `watchdog.timeoutMs` sends
     * ZOMBIE. Off (idle, no listener) without a watchdog configuration.
     */
    notificationWatchdog: watchdogMachine,
  },
  guards: {
    lockWasDegraded: (_, lock: LockOutput) => lock.degraded,
    /** The lock itself failed (strict timeout, a refused lock path, no permission): not an attempt to retry. */
    isLockFailure: ({ event }) => {
      const code = (event as { error?: { code?: unknown } }).error?.code;
      return typeof code === 'string' && code.startsWith('LOCK_');
    },
    // Both read the inspection that just finished (guards run before the transition's actions).
    isPhantom: ({ event }) => {
      const finding = (event as unknown as { output: DeviceFinding }).output;
      return finding.connected && !finding.servicesResolved;
    },
    isHealthyConnection: ({ event }) => {
      const finding = (event as unknown as { output: DeviceFinding }).output;
      return finding.connected && finding.servicesResolved;
    },
    mayCloseInactiveConnections: ({ context }) => context.closeInactiveConnections,
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
    escalationSaysReset: ({ context }) => decide(context) === 'reset',
    escalationSaysClear: ({ context }) => decide(context) === 'clear',
    escalationSaysRotate: ({ context }) => decide(context) === 'rotate',
    escalationSaysDiagnose: ({ context }) => decide(context) === 'diagnose',
    hasParentPool: ({ context }) => context.pooled,
    parksDuringBackoff: ({ context }) => context.parkDuringBackoff,
    linkMayBeOpen: ({ context }) => context.linkMayBeOpen,
    /** The attempt is still looking for the device (no Connect sent yet). */
    stillSearching: stateIn('#connection.connecting.searching'),
    cancellationArrived: ({ context }) => context.cancellation !== null,
    queuedForSlot: ({ context }) => context.queuedForSlot,
    disconnectWasRequested: ({ context }) => context.teardown === 'requested',
    // No backoff where BlueZ already gave the answer the wait is for (src/machines/backoff.ts).
    linkConfirmedDown: ({ context }) => linkConfirmedDown(context),
    staleConnectCancelledFirst: ({ context }) => staleConnectCancelledFirst(context),
    /** Out of slots, and rotation already chose another configured adapter with a free slot. */
    rotatedToAdapterWithFreeSlot: ({ context }) => nextAdapterHasFreeSlot(context, context.assignedAdapter),
    /** Out of slots, and the pool assigns another adapter (a pool assigns only one with a free slot). */
    assignedAdapterHasFreeSlot: ({ context, event }) =>
      nextAdapterHasFreeSlot(context, (event as { adapter?: string }).adapter ?? null),
    teardownEndsFailedAttempt: ({ context }) =>
      context.teardown === 'validation-failed' || context.teardown === 'attempt-deadline',
  },
  delays: {
    /** attemptTimeoutMs (docs/defaults.md): a Connect that never replies must not hold the attempt. */
    attemptDeadline: ({ context }) => context.attemptTimeoutMs,
    /** docs/errors.md: the wait before the next attempt depends on why the last one failed. */
    backoffForErrorClass: ({ context }) => context.backoffMs[lastCause(context)?.class ?? 'other'],
  },
  actions: {
    startFresh: assign({
      attempts: [],
      cancellation: null,
      queuedForSlot: false,
      error: null,
      teardown: null,
      staleInProgress: false,
    }),
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
    failWithLockError: assign(({ event }) => {
      const error = (event as { error?: unknown }).error;
      return { error: error instanceof Error ? error : new Error(String(error)) };
    }),
    /** Releases the per-device lock (implemented by the runtime; the lease id is the parameter). */
    releaseDeviceLock: (_, _params: { lease: string | null }) => {},
    forgetLease: assign({ lease: null }),
    forgetSlotLease: assign({ slotLease: null }),
    recordFinding: assign({ finding: ({ event }) => (event as unknown as { output: DeviceFinding }).output }),
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
    recordAttemptFailure: assign(({ context, event }) =>
      failureWith(context, describeFailure((event as unknown as { error: unknown }).error)),
    ),
    recordValidationFailure: assign(({ context, event }) => {
      const cause = describeFailure((event as unknown as { error: unknown }).error, 'validation');
      // ValidationError carries class `other` among the BlueZ classes (docs/errors.md); here it is
      // its own class so escalation and reports can tell "connected but useless" from a connect error.
      return failureWith(
        context,
        cause.code === 'VALIDATION_FAILED' ? { ...cause, class: 'validation' } : cause,
      );
    }),
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
    recordCancellation: assign(({ context, event }) => ({
      cancellation: context.cancellation ?? (event as { reason?: CancellationReason }).reason ?? 'aborted',
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
    noteEscalation: assign(({ context }, params: { action: EscalationAction }) => {
      const attempts = [...context.attempts];
      const last = attempts[attempts.length - 1];
      if (last !== undefined) attempts[attempts.length - 1] = { ...last, escalation: params.action };
      return { attempts };
    }),
    reportEscalation: emit(({ context }, params: { action: EscalationAction }) => ({
      type: 'escalation' as const,
      address: context.address,
      adapter: context.adapter,
      action: params.action,
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
    adoptAssignedAdapter: assign(({ event }) => ({
      assignedAdapter: (event as { adapter?: string }).adapter ?? null,
    })),
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
    recordLinkLoss: assign(({ context, event }) => ({
      attempts: linkEndRecord(context, {
        class: 'notConnected',
        code: 'LINK_LOST',
        name: 'LinkLost',
        message: linkLossReason(event),
      }),
    })),
    reportLinkLoss: emit(({ context, event }) => ({
      type: 'link-lost' as const,
      address: context.address,
      adapter: context.adapter,
      reason: linkLossReason(event),
    })),
    // What a pooled actor tells its parent pool (a standalone actor has no parent to tell).
    reportConnectedToPool: enqueueActions(({ context, enqueue }) => {
      if (!context.pooled) return;
      enqueue.sendParent({
        type: 'CHILD_CONNECTED',
        address: context.address,
        adapter: context.adapter,
      } satisfies ConnectionReport);
    }),
    reportLinkLostToPool: enqueueActions(({ context, event, enqueue }) => {
      if (!context.pooled) return;
      enqueue.sendParent({
        type: 'CHILD_LINK_LOST',
        address: context.address,
        adapter: context.adapter,
        reason: linkLossReason(event),
      } satisfies ConnectionReport);
    }),
    reportIdleToPool: enqueueActions(({ context, enqueue }) => {
      if (!context.pooled) return;
      enqueue.sendParent({
        type: 'CHILD_IDLE',
        address: context.address,
        adapter: context.adapter,
      } satisfies ConnectionReport);
    }),
    reportFailureToPool: enqueueActions(({ context, enqueue }) => {
      if (!context.pooled) return;
      const links = lastCause(context)?.linksOnAdapter;
      enqueue.sendParent({
        type: 'CHILD_ATTEMPT_FAILED',
        address: context.address,
        adapter: context.adapter,
        failureClass: lastCause(context)?.class ?? 'other',
        ...(links === undefined ? {} : { linksOnAdapter: links }),
      } satisfies ConnectionReport);
    }),
    reportWaitingToPool: enqueueActions(({ context, enqueue }) => {
      if (!context.pooled) return;
      enqueue.sendParent({
        type: 'CHILD_WAITING_FOR_SLOT',
        address: context.address,
        adapter: context.adapter,
      } satisfies ConnectionReport);
    }),
    reportParkedToPool: enqueueActions(({ context, enqueue }) => {
      if (!context.parkDuringBackoff) return;
      enqueue.sendParent({
        type: 'CHILD_PARKED',
        address: context.address,
        adapter: context.adapter,
      } satisfies ConnectionReport);
    }),
    reportResetToPool: enqueueActions(({ context, enqueue }, params: { running: boolean }) => {
      if (!context.pooled) return;
      enqueue.sendParent({
        type: 'CHILD_RESETTING',
        address: context.address,
        adapter: context.adapter,
        running: params.running,
      } satisfies ConnectionReport);
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

/** A failed attempt: the shared escalation policy and a parent pool hear of it. */
const countFailure = [shareFailure, 'reportFailureToPool'] as const;

/**
 * The established link ended (Connected=false, the device object gone, LINK_LOST): with keep-alive
 * a standalone actor reconnects after the class's backoff, else it is idle.
 */
const linkEnded = [
  {
    guard: 'keepsAlive',
    target: '#connection.backoff',
    actions: ['markLinkClosed', 'reportLinkLoss', 'recordLinkLoss'],
  },
  { target: '#connection.idle', actions: ['markLinkClosed', 'reportLinkLoss', 'reportLinkLostToPool'] },
] as const;

/** CANCEL once our Connect was sent: tear down the link or pending connect on the adapter in use. */
const cancelAfterConnectSent = {
  target: '#connection.disconnecting',
  actions: ['recordCancellation', { type: 'setTeardown', params: { reason: 'cancelled' } }],
} as const;

/** CANCEL outside connecting/validating: tear down what an earlier Connect may have opened, else fail at once. */
const cancelDuringAttempt = [
  {
    guard: 'linkMayBeOpen',
    target: '#connection.disconnecting',
    actions: ['recordCancellation', { type: 'setTeardown', params: { reason: 'cancelled' } }],
  },
  { target: '#connection.failed', actions: ['recordCancellation', 'failWithCancellation'] },
] as const;

/** QUEUED_FOR_SLOT once our Connect was sent: tear down the link or pending connect, then wait. */
const queueAfterConnectSent = {
  target: '#connection.disconnecting',
  actions: ['recordQueuedForSlot', { type: 'setTeardown', params: { reason: 'requeued' } }],
} as const;

/** QUEUED_FOR_SLOT outside connecting/validating: tear down what an earlier Connect may have opened, else wait at once. */
const queueDuringAttempt = [
  {
    guard: 'linkMayBeOpen',
    target: '#connection.disconnecting',
    actions: ['recordQueuedForSlot', { type: 'setTeardown', params: { reason: 'requeued' } }],
  },
  { target: '#connection.waiting-for-slot', actions: 'recordQueuedForSlot' },
] as const;

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
  }),
  on: {
    ADAPTER_ASSIGNED: { actions: 'adoptAssignedAdapter' },
  },
  output: ({ context }) => ({
    error: context.error ?? new Error('connection machine ended without an error'),
    attempts: context.attempts,
  }),
  states: {
    idle: {
      entry: [...releaseLock],
      on: {
        CONNECT: {
          target: 'locking',
          actions: ['startFresh', 'beginAttempt'],
        },
      },
    },
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
          { target: 'clearing-stale', actions: { type: 'takeLease', params: ({ event }) => event.output } },
        ],
        onError: [
          {
            guard: 'isLockFailure',
            target: 'failed',
            actions: ['recordAttemptFailure', 'failWithLockError'],
          },
          { target: 'escalating', actions: ['recordAttemptFailure', ...countFailure] },
        ],
      },
      on: { CANCEL: [...cancelDuringAttempt], QUEUED_FOR_SLOT: [...queueDuringAttempt] },
    },
    'clearing-stale': {
      initial: 'inspecting',
      on: { CANCEL: [...cancelDuringAttempt], QUEUED_FOR_SLOT: [...queueDuringAttempt] },
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
                guard: 'isPhantom',
                target: '#connection.phantom',
                actions: ['recordFinding', 'forgetDiagnoseRequest'],
              },
              {
                guard: 'isHealthyConnection',
                target: '#connection.validating',
                actions: ['recordFinding', 'forgetDiagnoseRequest', 'markAdopted'],
              },
              {
                guard: 'sawStaleInProgress',
                target: 'cancelling-stale-connect',
                actions: ['recordFinding', 'forgetDiagnoseRequest'],
              },
              {
                guard: 'cacheClearRequested',
                target: 'clearing-device-cache',
                actions: ['recordFinding', 'forgetDiagnoseRequest'],
              },
              { target: '#connection.connecting', actions: ['recordFinding', 'forgetDiagnoseRequest'] },
            ],
            onError: { target: '#connection.escalating', actions: ['recordAttemptFailure', ...countFailure] },
          },
        },
        'cancelling-stale-connect': {
          invoke: {
            id: 'cancelStalePendingConnect',
            src: 'cancelStalePendingConnect',
            input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
            onDone: { target: '#connection.connecting', actions: 'forgetStaleInProgress' },
            onError: {
              target: '#connection.escalating',
              actions: ['forgetStaleInProgress', 'recordAttemptFailure', ...countFailure],
            },
          },
        },
        'clearing-device-cache': {
          invoke: {
            id: 'clearDeviceCache',
            src: 'clearDeviceCache',
            input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
            onDone: { target: '#connection.connecting', actions: 'forgetCacheClearRequest' },
            onError: {
              target: '#connection.escalating',
              actions: ['forgetCacheClearRequest', 'recordAttemptFailure', ...countFailure],
            },
          },
        },
      },
    },
    phantom: {
      // Without the opt-in the phantom is reported and left alone: it may be another process's link
      // that is still resolving services (bleak-retry-connector#226, #231).
      always: {
        guard: not('mayCloseInactiveConnections'),
        target: 'escalating',
        actions: ['recordPhantomLeftAlone', ...countFailure, 'reportPhantomLeftAlone'],
      },
      invoke: {
        id: 'clearPhantom',
        src: 'clearPhantom',
        input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
        onDone: { target: 'connecting' },
        onError: { target: 'escalating', actions: ['recordAttemptFailure', ...countFailure] },
      },
      on: { CANCEL: [...cancelDuringAttempt], QUEUED_FOR_SLOT: [...queueDuringAttempt] },
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
            onError: { target: '#connection.escalating', actions: ['recordAttemptFailure', ...countFailure] },
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
            onDone: { target: '#connection.validating' },
            // The connect actor itself waits for Connected=false after an RF abort before rejecting.
            onError: { target: '#connection.escalating', actions: ['recordAttemptFailure', ...countFailure] },
          },
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
            target: 'disconnecting',
            actions: [
              'recordAttemptDeadline',
              ...countFailure,
              { type: 'setTeardown', params: { reason: 'attempt-deadline' } },
            ],
          },
        ],
      },
      on: { CANCEL: cancelAfterConnectSent, QUEUED_FOR_SLOT: queueAfterConnectSent },
    },
    validating: {
      // Connected: the slot limits concurrent connect attempts, and validation (late GATT waits of
      // up to 14 s) is not one. The Python library releases it here too.
      entry: [...releaseSlot],
      invoke: {
        id: 'validateWithLateGattRetry',
        src: 'validateWithLateGattRetry',
        input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
        onDone: { target: 'connected' },
        onError: {
          target: 'disconnecting',
          actions: [
            'recordValidationFailure',
            ...countFailure,
            { type: 'setTeardown', params: { reason: 'validation-failed' } },
          ],
        },
      },
      on: { CANCEL: cancelAfterConnectSent, QUEUED_FOR_SLOT: queueAfterConnectSent },
    },
    connected: {
      entry: [
        'recordAttemptSuccess',
        {
          type: 'shareLedgerChange',
          params: ({ context }: { context: ConnectionContext }): LedgerChange => ({
            kind: 'success',
            adapter: context.adapter,
          }),
        },
        ...releaseLock,
        'reportConnectedToPool',
      ],
      invoke: [
        {
          id: 'watchLink',
          src: 'watchLink',
          input: ({ context }) => ({ address: context.address, adapter: context.adapter }),
          onDone: [...linkEnded],
          // A watcher that fails (the bus went away) can no longer vouch for the link: treat it as
          // lost rather than let the error take the actor, and a parent pool, down.
          onError: [...linkEnded],
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
        LINK_LOST: [...linkEnded],
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
              { type: 'setTeardown', params: { reason: 'zombie' } },
            ],
          },
        ],
      },
    },
    disconnecting: {
      invoke: {
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
          { guard: 'teardownEndsFailedAttempt', target: 'escalating', actions: 'markLinkClosed' },
          { guard: 'reconnectsAfterZombie', target: 'escalating', actions: 'markLinkClosed' },
          { target: 'idle', actions: ['markLinkClosed', 'reportIdleToPool'] },
        ],
        // A disconnect that could not be verified is still the end of this teardown: the next
        // attempt's inspection (or the caller) sees what BlueZ really holds.
        onError: [
          { guard: 'cancellationArrived', target: 'failed', actions: 'failWithCancellation' },
          { guard: 'queuedForSlot', target: 'waiting-for-slot' },
          { guard: 'teardownEndsFailedAttempt', target: 'escalating' },
          { guard: 'reconnectsAfterZombie', target: 'escalating' },
          { target: 'idle', actions: 'reportIdleToPool' },
        ],
      },
      on: {
        // A requested disconnect of an established link is not a connect to cancel.
        CANCEL: { guard: not('disconnectWasRequested'), actions: 'recordCancellation' },
        // Tearing down a failed attempt: wait for a slot afterwards instead of escalating.
        QUEUED_FOR_SLOT: { guard: 'teardownEndsFailedAttempt', actions: 'recordQueuedForSlot' },
      },
    },
    escalating: {
      always: [
        { guard: 'attemptsExhausted', target: 'failed', actions: 'failWithExhaustedAttempts' },
        {
          guard: 'escalationSaysReset',
          target: 'resetting',
          actions: [
            { type: 'noteEscalation', params: { action: 'reset' } },
            { type: 'reportEscalation', params: { action: 'reset' } },
          ],
        },
        {
          guard: 'escalationSaysClear',
          target: 'backoff',
          actions: [
            { type: 'noteEscalation', params: { action: 'clear' } },
            { type: 'reportEscalation', params: { action: 'clear' } },
            'markClearCacheNext',
          ],
        },
        {
          guard: and(['escalationSaysRotate', 'hasParentPool']),
          target: 'backoff',
          actions: [
            { type: 'noteEscalation', params: { action: 'rotate' } },
            { type: 'reportEscalation', params: { action: 'rotate' } },
            'requestRotationFromPool',
          ],
        },
        {
          guard: 'escalationSaysRotate',
          target: 'backoff',
          actions: [
            { type: 'noteEscalation', params: { action: 'rotate' } },
            { type: 'reportEscalation', params: { action: 'rotate' } },
            'rotateToNextConfiguredAdapter',
          ],
        },
        {
          guard: 'escalationSaysDiagnose',
          target: 'backoff',
          actions: [
            { type: 'noteEscalation', params: { action: 'diagnose' } },
            { type: 'reportEscalation', params: { action: 'diagnose' } },
            'markDiagnoseNext',
          ],
        },
        {
          target: 'backoff',
          actions: [
            { type: 'noteEscalation', params: { action: 'retry' } },
            { type: 'reportEscalation', params: { action: 'retry' } },
          ],
        },
      ],
    },
    resetting: {
      // A pool must not move a child away while the ladder has its adapter powered off.
      entry: { type: 'reportResetToPool', params: { running: true } },
      exit: { type: 'reportResetToPool', params: { running: false } },
      invoke: {
        id: 'resetAdapter',
        src: 'resetAdapter',
        input: ({ context }) => ({ adapter: context.adapter }),
        // Success or failure, the cooldown starts (docs/errors.md, Escalation): a failing reset
        // must not be retried on every following failure.
        onDone: {
          target: 'backoff',
          actions: [
            'recordResetAttempt',
            {
              type: 'shareLedgerChange',
              params: ({ context }: { context: ConnectionContext }): LedgerChange => ({
                kind: 'reset',
                adapter: context.adapter,
                at: Date.now(),
              }),
            },
          ],
        },
        onError: {
          target: 'backoff',
          actions: [
            'recordResetAttempt',
            {
              type: 'shareLedgerChange',
              params: ({ context }: { context: ConnectionContext }): LedgerChange => ({
                kind: 'reset',
                adapter: context.adapter,
                at: Date.now(),
              }),
            },
          ],
        },
      },
      on: { CANCEL: [...cancelDuringAttempt], QUEUED_FOR_SLOT: [...queueDuringAttempt] },
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
              guard: or(['linkConfirmedDown', 'staleConnectCancelledFirst', 'rotatedToAdapterWithFreeSlot']),
              target: '#connection.locking',
              actions: 'beginAttempt',
            },
            { target: 'waiting' },
          ],
        },
        // A pooled actor holds no slot while it waits (CHILD_PARKED) and asks the pool for one
        // when the wait ends, its attempts kept (waiting-for-slot without QUEUED_FOR_SLOT).
        waiting: {
          entry: 'reportParkedToPool',
          after: {
            backoffForErrorClass: [
              { guard: 'parksDuringBackoff', target: '#connection.waiting-for-slot' },
              { target: '#connection.locking', actions: 'beginAttempt' },
            ],
          },
        },
      },
      on: {
        CANCEL: [...cancelDuringAttempt],
        QUEUED_FOR_SLOT: [...queueDuringAttempt],
        // Otherwise the machine-wide handler only records the assignment for the next attempt.
        ADAPTER_ASSIGNED: {
          guard: 'assignedAdapterHasFreeSlot',
          target: 'locking',
          actions: ['adoptAssignedAdapter', 'beginAttempt'],
        },
      },
    },
    'waiting-for-slot': {
      // Nothing held: no lock (another actor of this device may connect meanwhile), no link, no
      // timer. The pool hands out the freed slot, oldest waiting device first.
      entry: [...releaseLock, 'reportWaitingToPool'],
      on: {
        ADAPTER_ASSIGNED: [
          // Queued for a slot (QUEUED_FOR_SLOT): a new run. After a parked backoff: the same run.
          {
            guard: 'queuedForSlot',
            target: 'locking',
            actions: ['adoptAssignedAdapter', 'startFresh', 'beginAttempt'],
          },
          { target: 'locking', actions: ['adoptAssignedAdapter', 'beginAttempt'] },
        ],
        CANCEL: { target: 'failed', actions: ['recordCancellation', 'failWithCancellation'] },
      },
    },
    failed: {
      type: 'final',
      entry: [...releaseLock],
    },
  },
});
