/**
 * `bluez-connection-manager/machines`: the machines and their building blocks, for people who run
 * them in their own runtime, write model-based tests against them, draw them, or build on the
 * lower layers (the escalation ledger, the reset ladder, the stall guard, lock files, discovery
 * sessions, input validation). Apps need only the root entry point.
 * @packageDocumentation
 */

// ---- the machines ----------------------------------------------------------------------------------
export { connectionMachine, connectionSetup, describeFailure, toAttemptRecords } from './connection.js';
export type { ConnectionEmitted, PoolReport } from './connection.js';
export { DEFAULT_BACKOFF_MS } from './connection-contracts.js';
export type {
  BondedPhantomOutput,
  CancellationReason,
  ClearPhantomOutput,
  ConnectInput,
  ConnectionContext,
  ConnectionExternalEvent,
  ConnectionInput,
  ConnectionOutput,
  ConnectionReport,
  DeviceFinding,
  DeviceOnAdapter,
  DisconnectInput,
  DisconnectOutput,
  GattSettleInput,
  GattSettleOutput,
  InspectInput,
  LinkLossOutput,
  LockInput,
  LockOutput,
  ResetInput,
  RotationRequest,
  TeardownReason,
  ValidateInput,
  ValidationCheck,
  WatchdogConfig,
} from './connection-contracts.js';
export { adapterPoolMachine } from './adapter-pool.js';
export type { PoolInput, PooledConnectionActor, PoolAdapterActor } from './adapter-pool.js';
export { adapterMachine, limitInForce } from './adapter.js';
export type {
  AdapterContext,
  AdapterEvent,
  AdapterInput,
  AdapterStatus,
  LimitReprobeReport,
} from './adapter.js';
export type { Sightings } from './adapter-pool-logic.js';
export type { PoolEvent } from './adapter-pool-steps.js';
export { watchdogMachine } from './watchdog.js';
export type {
  WatchdogContext,
  WatchdogEmitted,
  WatchdogInput,
  WatchdogProbe,
  ZombieReport,
} from './watchdog.js';
export { topLevelState } from './state-trail.js';

// ---- escalation ------------------------------------------------------------------------------------
export {
  ESCALATION_LEVELS,
  countsTowardEscalation,
  decideEscalation,
  emptyLedger,
  recordFailure,
  recordReset,
  recordSuccess,
  resetCooldownElapsed,
} from './escalation.js';
export type { EscalationLedger, EscalationQuestion } from './escalation.js';
export { resolveEscalationConfig } from './escalation-policy.js';
export type { LedgerChange } from './escalation-policy.js';
export { DEFAULT_ESCALATION, PROFILE_BATTERY, PROFILE_ON_DEMAND, PROFILE_SENSOR } from './profiles.js';

// ---- the actors' I/O -----------------------------------------------------------------------------
export { connectionActorFunctions, connectionActorImplementations } from '../actors/connection-actors.js';
export type { ConnectionActorDeps } from '../actors/connection-actors.js';
export { LADDER_STEPS, ResetLadder, resetLadderActor } from '../actors/reset-ladder.js';
export type {
  LadderLogEntry,
  LadderReport,
  LadderStep,
  StepOutcome,
  StepResult as LadderStepResult,
} from '../actors/reset-ladder.js';
export { execFileRunner, ladderBluezPort, systemClock } from '../actors/reset-ladder-ports.js';
export type {
  CommandResult,
  CommandRunner,
  LadderBluezPort,
  LadderClock,
} from '../actors/reset-ladder-ports.js';

// ---- the stall guard -------------------------------------------------------------------------------
export { StallGuard } from '../stall-guard/stall-guard.js';
export type { StallGuardOptions, StallReport } from '../stall-guard/stall-guard.js';
export { stallGuardLocks } from '../stall-guard/lock-hook.js';
export type { HeldLockHandle, StallGuardLockHook } from '../stall-guard/lock-hook.js';
export { stallGuardOf } from '../connection/establish.js';
export { DEFAULT_STALL_GUARD_MS } from '../connection/watchdog-options.js';
export type { StallGuardAction } from '../bluez/errors.js';

// ---- lock files and discovery sessions -------------------------------------------------------------
export {
  heldLocks,
  parseProcLocks,
  resolveScanLockOptions,
  resolveSlotLockOptions,
  scanLockPath,
  slotLockPath,
  SCAN_LOCK_DEFAULTS,
  SLOT_LOCK_DEFAULTS,
} from '../lock/index.js';
export type { HeldLock, ResolvedScanLock, ResolvedSlotLock } from '../lock/index.js';
export {
  DEFAULT_DISCOVERY,
  joinDiscovery,
  openDiscoverySessions,
  resolveDiscoveryOptions,
  seenRecently,
} from '../discovery/index.js';
export type { ResolvedDiscovery } from '../discovery/index.js';

// ---- BlueZ layer helpers ---------------------------------------------------------------------------
export {
  DBUS_AUTH_METHODS,
  defaultAuthMethods,
  validateAdapterName,
  validateAuthMethods,
  validateMac,
  validateTimeoutMs,
} from '../bluez/index.js';
export type { ClassifyContext, DefaultAction, MirrorChange } from '../bluez/index.js';
export { normalizeUuid } from '../connection/validators.js';
