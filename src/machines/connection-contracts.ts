/**
 * The typed contracts of the connection machine: its input, context, events, and the input/output
 * of every named actor. src/actors implements the actors against these shapes; tests inject fakes
 * with the same shapes. Everything here is plain data so the Stately inspector can show it.
 */
import type { FailureClass } from '../bluez/errors.js';
import type { EscalationAction, EscalationConfig, EscalationLedger } from './escalation.js';
import type { WatchdogProbe, ZombieEvent } from './watchdog.js';

/**
 * Why an attempt failed: the BlueZ classes of docs/errors.md, plus `validation` (connected but failed
 * validation; counted by escalation, unlike the Python original) and `phantom` (Connected without
 * ServicesResolved, left alone because `closeInactiveConnections` is off).
 */
export type { FailureClass };

/** The cause of one failed attempt (plain data, taken from the typed error). */
export interface FailureCause {
  readonly class: FailureClass;
  /** Stable code of the error (`IN_PROGRESS`, `ATTEMPT_DEADLINE`, …). */
  readonly code: string;
  /** Error name (`InProgressError`, …). */
  readonly name: string;
  /** D-Bus error name when the error came from D-Bus. */
  readonly dbusName?: string;
  readonly message: string;
  /**
   * Links BlueZ showed on the adapter (other devices' Connected) when a Connect failed: the real
   * count a refused link is judged by (the pool's own reservations are no evidence).
   */
  readonly linksOnAdapter?: number;
  /** A failed connect after which BlueZ showed Connected=false: a retry cannot meet the old link. */
  readonly linkDownSeen?: boolean;
  /**
   * The connection slot limit in force on the adapter when an RF abort came back (slotsPerAdapter
   * or the limit a pool learned): with `linksOnAdapter` at this limit the abort is a refusal for
   * lack of slots (`connecting.classifying-abort`).
   */
  readonly slotLimit?: number;
}

/** One attempt: where, how long, and how it ended. */
export interface ConnectionAttempt {
  /** 1-based. */
  readonly number: number;
  readonly adapter: string;
  /** Epoch ms. */
  readonly startedAt: number;
  /** Set when the attempt ended. */
  readonly durationMs: number | null;
  /**
   * `cancelled`: ended by the caller's AbortSignal or overallTimeoutMs; `requeued`: ended because the
   * pool queued the device for a slot (its adapter went away or is full). Neither counts as a failure.
   */
  readonly outcome: 'pending' | 'connected' | 'failed' | 'cancelled' | 'requeued';
  /** Set for failed attempts. */
  readonly cause: FailureCause | null;
  /** The escalation step chosen after this attempt failed. */
  readonly escalation: EscalationAction | null;
  /** True when the attempt adopted a connection that was already up and resolved. */
  readonly adopted: boolean;
}

/**
 * Why the actor is tearing a link down in `disconnecting` (`requeued`: the pool queued the device
 * for a slot while our Connect may have been pending).
 */
export type TeardownReason =
  'requested' | 'validation-failed' | 'attempt-deadline' | 'cancelled' | 'requeued' | 'zombie';

/** How a cancellation arrived: the caller's AbortSignal or `overallTimeoutMs`. */
export type CancellationReason = 'aborted' | 'timed-out';

/** Input of the connection machine. */
export interface ConnectionInput {
  /** Device address, upper-case AA:BB:CC:DD:EE:FF. */
  readonly address: string;
  /** Adapters to use, in rotation order (at least one). */
  readonly adapters: readonly string[];
  /**
   * True when a parent pool assigns adapters: rotation asks the pool, and the actor reports its
   * progress to the pool ({@link ConnectionReport}). A standalone actor sends its parent nothing.
   */
  readonly pooled?: boolean;
  /**
   * A pooled actor holds no slot while it waits out a backoff: it reports CHILD_PARKED when the wait
   * starts and, when it ends, waits in `waiting-for-slot` (CHILD_WAITING_FOR_SLOT) for the pool's
   * ADAPTER_ASSIGNED, its attempts kept. The adapter pool sets it; default false (the actor goes
   * on by itself after the wait).
   */
  readonly parkDuringBackoff?: boolean;
  readonly maxAttempts: number;
  readonly attemptTimeoutMs: number;
  readonly closeInactiveConnections: boolean;
  readonly escalation: EscalationConfig;
  /** The ledger to start from (a shared policy's current one). */
  readonly ledger?: EscalationLedger;
  /** Backoff per failure class; missing classes use {@link DEFAULT_BACKOFF_MS}. */
  readonly backoffMs?: Partial<Record<FailureClass, number>>;
  /** The notification watchdog run in `connected`; absent or null: off. */
  readonly watchdog?: WatchdogConfig | null;
  /**
   * Reconnect after a link loss or a zombie (a standalone actor; a pooled actor's parent decides
   * and this is ignored). Default false: a lost link ends in `idle`.
   */
  readonly keepAlive?: boolean;
  /**
   * The overall deadline of one establishing run (from CONNECT, a pool's assignment, or the start
   * of a reconnect run) in ms; absent or null: none. When it passes, the run is cancelled as by
   * CANCEL with reason `timed-out`.
   */
  readonly overallTimeoutMs?: number | null;
  /**
   * How long `connecting.awaiting-link-down` waits for Connected=false after an RF abort
   * (disconnectTimeoutMs, docs/defaults.md); default 5 000.
   */
  readonly disconnectTimeoutMs?: number;
  /**
   * How long discovery may look for a device that BlueZ no longer knows (rediscoveryTimeoutMs,
   * docs/defaults.md): bounds `phantom.rediscovering`; default 10 000.
   */
  readonly rediscoveryTimeoutMs?: number;
}

/** Context of the connection machine (serialisable; the only class instances are errors). */
export interface ConnectionContext {
  readonly address: string;
  readonly adapters: readonly string[];
  readonly pooled: boolean;
  /** See {@link ConnectionInput.parkDuringBackoff} (only with a parent pool). */
  readonly parkDuringBackoff: boolean;
  /** Adapter of the current (or last) attempt. */
  readonly adapter: string;
  /** Adapter the pool assigned for the next attempt, if any. */
  readonly assignedAdapter: string | null;
  readonly maxAttempts: number;
  readonly attemptTimeoutMs: number;
  readonly closeInactiveConnections: boolean;
  readonly escalation: EscalationConfig;
  readonly ledger: EscalationLedger;
  readonly backoffMs: Readonly<Record<FailureClass, number>>;
  readonly attempts: readonly ConnectionAttempt[];
  /** Lease of the per-device lock (an id the lock actor understands), or null. */
  readonly lease: string | null;
  /**
   * Lease of the cross-process connection slot of this attempt's adapter, or null (locks off,
   * degraded, or released). Held from `locking` until validation starts or the failed attempt's
   * handling is over (entering `backoff`).
   */
  readonly slotLease: string | null;
  /** InProgress was seen: the next pass cancels BlueZ's pending connect before connecting. */
  readonly staleInProgress: boolean;
  /** Escalation asked for a thorough inspection before the next attempt. */
  readonly diagnoseNext: boolean;
  /** Escalation asked to clear BlueZ's device cache before the next attempt. */
  readonly clearCacheNext: boolean;
  /** Our Connect may have left a link or a pending connect that must be torn down on cancellation. */
  readonly linkMayBeOpen: boolean;
  /** Why `disconnecting` was entered. */
  readonly teardown: TeardownReason | null;
  /** Set once a cancellation arrived. */
  readonly cancellation: CancellationReason | null;
  /** The pool queued the device for a slot: the current attempt ends in `waiting-for-slot`. */
  readonly queuedForSlot: boolean;
  /** The last device inspection (for the inspector and for reports). */
  readonly finding: DeviceFinding | null;
  /** The final error (in `failed`). */
  readonly error: Error | null;
  /** The notification watchdog configuration, or null when off. */
  readonly watchdog: WatchdogConfig | null;
  /** Reconnect after link loss or a zombie (standalone actors only). */
  readonly keepAlive: boolean;
  /** See {@link ConnectionInput.overallTimeoutMs}. */
  readonly overallTimeoutMs: number | null;
  /** Epoch ms at which the current establishing run is cancelled (`timed-out`), or null. */
  readonly deadlineAt: number | null;
  /**
   * The escalation step chosen for the last failure, decided once on entering `escalating` (one
   * clock read) and kept for the transitions that follow and for the inspector.
   */
  readonly decision: EscalationAction | null;
  /** Epoch ms at which the current validation began (the late-GATT budget counts from here). */
  readonly validationStartedAt: number | null;
  /** Why the last validation check did not pass (services or characteristics missing), or null. */
  readonly validationMiss: string | null;
  /** How long `validating.waiting-for-late-gatt` waits at most before checking again (ms). */
  readonly lateGattWaitMs: number;
  /** See {@link ConnectionInput.disconnectTimeoutMs}. */
  readonly disconnectTimeoutMs: number;
  /** See {@link ConnectionInput.rediscoveryTimeoutMs}. */
  readonly rediscoveryTimeoutMs: number;
  /**
   * An RF abort's cause, held while `connecting.awaiting-link-down` waits for the link to drop;
   * recorded (as `aborted` or, at the slot limit, `outOfSlots`) when the wait ends.
   */
  readonly heldFailure: FailureCause | null;
}

/** Output of the machine when it reaches `failed`. */
export interface ConnectionOutput {
  readonly error: Error;
  readonly attempts: readonly ConnectionAttempt[];
}

/** Events the machine accepts from outside. */
export type ConnectionExternalEvent =
  | { type: 'CONNECT' }
  | { type: 'DISCONNECT' }
  | { type: 'CANCEL'; reason: CancellationReason }
  /**
   * From the parent pool: the adapter of the next attempt (after a rotation request, or when the
   * pool evacuates an adapter). In `waiting-for-slot` it starts a new run on that adapter.
   */
  | { type: 'ADAPTER_ASSIGNED'; adapter: string }
  /**
   * From the parent pool: no adapter that sees the device has a free slot (the answer to a rotation
   * request, or its adapter went away). The attempt ends (tearing down what our Connect may have
   * opened) and the actor waits in `waiting-for-slot` for ADAPTER_ASSIGNED, keeping its identity.
   */
  | { type: 'QUEUED_FOR_SLOT'; reason: string }
  /**
   * The link is gone although BlueZ may not say so yet: for watchers outside the machine (a
   * notification watchdog, the pool). BlueZ's own Connected=false arrives through `watchLink`.
   */
  | { type: 'LINK_LOST'; reason: string }
  /**
   * Data arrived by a path the mirror does not see (a polled read, an AcquireNotify fd): the link is
   * alive. In `connected` it re-arms the watchdog's silence allowance; elsewhere it is ignored.
   */
  | { type: 'ACTIVITY' }
  /** From the invoked watchdog: the link went silent for longer than the watchdog's timeout. */
  | ZombieEvent;

/** Event sent to the parent pool when escalation chooses to rotate. */
export interface RotationRequest {
  readonly type: 'ROTATION_REQUESTED';
  readonly address: string;
  readonly fromAdapter: string;
  readonly failureClass: FailureClass | null;
}

/**
 * What a pooled connection actor tells its parent pool (sendParent), so the pool's slot accounting
 * follows the child without reading its snapshots. A standalone actor (input `pooled` false) sends
 * nothing to a parent.
 */
export type ConnectionReport =
  | RotationRequest
  /** Entered `connected` on `adapter`: the link holds a slot there. */
  | { readonly type: 'CHILD_CONNECTED'; readonly address: string; readonly adapter: string }
  /** Left `connected` because the link went away (Connected=false, object gone, LINK_LOST): the slot is free. */
  | {
      readonly type: 'CHILD_LINK_LOST';
      readonly address: string;
      readonly adapter: string;
      readonly reason: string;
    }
  /** Back in `idle` after a verified disconnect (DISCONNECT): the slot is free. */
  | { readonly type: 'CHILD_IDLE'; readonly address: string; readonly adapter: string }
  /** An attempt on `adapter` failed (before escalation decides what comes next). */
  | {
      readonly type: 'CHILD_ATTEMPT_FAILED';
      readonly address: string;
      readonly adapter: string;
      readonly failureClass: FailureClass;
      /** Real links on the adapter besides this device when its Connect failed, when known. */
      readonly linksOnAdapter?: number;
    }
  /**
   * Entered `waiting-for-slot`: after QUEUED_FOR_SLOT (the attempt is torn down, the slot is free),
   * or at the end of a backoff the pool parked it for (it asks for a slot again, attempts kept).
   */
  | { readonly type: 'CHILD_WAITING_FOR_SLOT'; readonly address: string; readonly adapter: string }
  /**
   * Started waiting out a backoff on `adapter`: it needs no slot until the wait ends, when it enters
   * `waiting-for-slot` (CHILD_WAITING_FOR_SLOT) and goes on with its attempts on ADAPTER_ASSIGNED.
   */
  | { readonly type: 'CHILD_PARKED'; readonly address: string; readonly adapter: string }
  /** The adapter recovery ladder started (`running` true) or ended on `adapter`. */
  | {
      readonly type: 'CHILD_RESETTING';
      readonly address: string;
      readonly adapter: string;
      readonly running: boolean;
    };

// ---- named actors: input and output -------------------------------------------------------------

/** `acquireDeviceLock` input. */
export interface LockInput {
  readonly address: string;
  readonly adapter: string;
  /** The lease already held by this actor (re-entry after backoff), or null. */
  readonly lease: string | null;
}
/** `acquireDeviceLock` output. */
export interface LockOutput {
  readonly lease: string;
  /** Lease of the cross-process slot on the attempt's adapter; null when slot locks are off or degraded. */
  readonly slotLease: string | null;
  /** True when the slot could not be taken in time and the attempt goes on unlocked (docs/errors.md). */
  readonly degraded: boolean;
  /** How long the slot was waited for (ms); 0 when slot locks are off. */
  readonly waitedMs: number;
}

/** `inspectDevice` input. */
export interface InspectInput {
  readonly address: string;
  readonly adapter: string;
  /** Escalation asked to diagnose: read BlueZ itself, not only the mirror, and check the adapter. */
  readonly thorough: boolean;
}
/** What the device looks like in BlueZ before an attempt. */
export interface DeviceFinding {
  /** A Device1 object exists on the adapter. */
  readonly known: boolean;
  readonly connected: boolean;
  readonly servicesResolved: boolean;
  /** The device is paired (bonded): clearing its phantom tries a Disconnect first, to keep the bond. */
  readonly paired?: boolean;
}

/** Input of the actors that act on one device on one adapter. */
export interface DeviceOnAdapter {
  readonly address: string;
  readonly adapter: string;
}

/** `connectWithDeadline` input. */
export interface ConnectInput extends DeviceOnAdapter {
  /** The per-attempt deadline (the machine also enforces it with `after`). */
  readonly timeoutMs: number;
}

/** `verifiedDisconnect` input. */
export interface DisconnectInput extends DeviceOnAdapter {
  readonly reason: TeardownReason;
}
/** `verifiedDisconnect` output. */
export interface DisconnectOutput {
  readonly outcome: 'disconnected' | 'removed' | 'notConnected';
}

/** `releaseBondedPhantom` output: how the Disconnect ended, and whether BlueZ still knows the device. */
export interface BondedPhantomOutput extends DisconnectOutput {
  readonly known: boolean;
}

/** `rediscoverDevice` output: whether BlueZ knows the device again. */
export interface ClearPhantomOutput {
  /** The Device1 object is back (rediscovered) after RemoveDevice. */
  readonly reappeared: boolean;
}

/** `watchLink` output: why the link ended. */
export interface LinkLossOutput {
  readonly reason: string;
}

/** `validateOnce` input: the device, and when its validation began (epoch ms). */
export interface ValidateInput extends DeviceOnAdapter {
  readonly startedAt: number;
}
/**
 * `validateOnce` output. A check that did not pass because the services or characteristics it
 * needs are not exported (yet) says how long to wait for them (`nextCheckInMs`, from the late-GATT
 * delays), or null when that budget is spent. A validator that throws (a failed read, a bug) is
 * not "not there yet": the actor rejects and the attempt fails at once.
 */
export type ValidationCheck =
  | { readonly passed: true }
  | { readonly passed: false; readonly reason: string; readonly nextCheckInMs: number | null };

/** `awaitGattSettled` input. */
export interface GattSettleInput extends DeviceOnAdapter {
  /** Backstop of the wait (the state's `after` ends it first). */
  readonly timeoutMs: number;
}
/** `awaitGattSettled` output: the GATT tree changed and settled, the wait ran out, or the link dropped. */
export interface GattSettleOutput {
  readonly outcome: 'settled' | 'deadline' | 'disconnected';
}

/** `resetAdapter` input. */
export interface ResetInput {
  readonly adapter: string;
}

/** Default backoff per failure class in ms (docs/errors.md; bluezGone uses a timer here until the pool waits for org.bluez). */
export const DEFAULT_BACKOFF_MS: Readonly<Record<FailureClass, number>> = Object.freeze({
  inProgress: 250,
  aborted: 250,
  outOfSlots: 4000,
  notFound: 4000,
  notReady: 1000,
  noReply: 250,
  bluezGone: 2000,
  notConnected: 0,
  limitsExceeded: 250,
  other: 100,
  validation: 250,
  phantom: 1000,
  zombie: 1000,
  stalled: 250,
});

/** What the connection does when the watchdog declares a zombie. */
export type ZombieAction =
  /** Verified disconnect on the adapter in use, then reconnect when keep-alive is on (the default). */
  | 'reconnect'
  /** Verified disconnect; the connection ends in `idle` even with keep-alive. */
  | 'disconnect'
  /** Only the `zombie` event (and a log line); the link is left as it is. */
  | 'report';

/** The notification watchdog of a connection after validation (plain data). */
export interface WatchdogConfig {
  /** Silence that makes a zombie, in ms. */
  readonly timeoutMs: number;
  /** Read once before a zombie is declared; null: no probe. */
  readonly probe: WatchdogProbe | null;
  readonly action: ZombieAction;
}
