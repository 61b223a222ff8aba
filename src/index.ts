/**
 * bluez-connection-manager: keeps BLE connections alive on Linux BlueZ.
 *
 * The public API grows issue by issue; see README.md for what is available.
 * @packageDocumentation
 */
import { createRequire } from 'node:module';

/** This package's version, read from its own package.json (one directory above dist/ and src/). */
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string })
  .version;

// BlueZ over D-Bus (issue 3): typed errors and their SPEC §5 classification, input validators,
// and the bounded, signal-driven client that the machines are built on.
export {
  AbortedError,
  AdapterError,
  AdapterNotReadyError,
  BluezError,
  BluezUnavailableError,
  BusLostError,
  BusUnreachableError,
  ConnectionFailedError,
  DBusCallError,
  DBusTimeoutError,
  DeviceNotFoundError,
  InProgressError,
  LockTimeoutError,
  NoReplyError,
  NotConnectedError,
  OutOfSlotsError,
  ValidationError,
  WaitTimeoutError,
  classifyError,
  isAbortError,
  openBluez,
  validateAdapterName,
  validateMac,
  validateTimeoutMs,
} from './bluez/index.js';
export type {
  AdapterSnapshot,
  AttemptRecord,
  BluezClient,
  Classification,
  ClassifyContext,
  DefaultAction,
  DeviceSnapshot,
  ErrorClass,
  GattCharacteristicSnapshot,
  GattServiceSnapshot,
  GattServiceTree,
  MirrorChange,
  OpenBluezOptions,
  VerifiedDisconnectOutcome,
} from './bluez/index.js';

// The connection actor (issue 5): the SPEC §2 machine, its escalation ladder and profiles, the
// runtime over src/bluez, and the post-connect validators.
export { createConnectionActor, establishConnection } from './connection/establish.js';
export type { AttemptReport, ConnectionActor, ManagedConnection } from './connection/establish.js';
export { CONNECTION_DEFAULTS } from './connection/options.js';
export type {
  ConnectionActorOptions,
  ConnectionLogger,
  ConnectionOptions,
  EstablishOptions,
} from './connection/options.js';
export {
  characteristicExists,
  gattNotEmpty,
  normalizeUuid,
  readCharacteristic,
} from './connection/validators.js';
export type { ValidationContext, Validator } from './connection/validators.js';
export { connectionMachine, describeFailure } from './machines/connection.js';
export type { ConnectionEmitted } from './machines/connection.js';
export { DEFAULT_BACKOFF_MS } from './machines/connection-contracts.js';
export type {
  CancellationReason,
  ConnectionAttempt,
  ConnectionContext,
  ConnectionExternalEvent,
  ConnectionInput,
  ConnectionOutput,
  DeviceFinding,
  FailureCause,
  FailureClass,
  RotationRequest,
  TeardownReason,
} from './machines/connection-contracts.js';
export {
  ESCALATION_LEVELS,
  decideEscalation,
  emptyLedger,
  recordFailure,
  recordReset,
  recordSuccess,
  resetCooldownElapsed,
} from './machines/escalation.js';
export type {
  EscalationAction,
  EscalationConfig,
  EscalationLedger,
  EscalationQuestion,
} from './machines/escalation.js';
export { EscalationPolicy, resolveEscalationConfig } from './machines/escalation-policy.js';
export type { LedgerChange } from './machines/escalation-policy.js';
export {
  DEFAULT_ESCALATION,
  ESCALATION_PROFILES,
  PROFILE_BATTERY,
  PROFILE_ON_DEMAND,
  PROFILE_SENSOR,
} from './machines/profiles.js';
export type { EscalationProfileName } from './machines/profiles.js';
export { createStateTrail, topLevelState } from './machines/state-trail.js';
export type { StateTrail } from './machines/state-trail.js';

// The adapter pool (issue 6): the SPEC §3 parent machine, its runtime over src/bluez, and the
// SPEC §4 adapter recovery ladder used by the connection actors' `resetting` state.
export { createAdapterPool } from './pool/create-adapter-pool.js';
export type {
  AdapterPool,
  AdapterPoolOptions,
  PoolAdapterSnapshot,
  PoolConnectOptions,
  PoolSnapshot,
  PooledConnection,
} from './pool/create-adapter-pool.js';
export { adapterPoolMachine } from './machines/adapter-pool.js';
export type { PoolInput } from './machines/adapter-pool.js';
export type { AdapterStrategy, PoolDeviceStatus } from './machines/adapter-pool-logic.js';
export type { PoolEmitted, PoolEvent } from './machines/adapter-pool-steps.js';
export { LADDER_STEPS, ResetLadder, resetLadderActor } from './actors/reset-ladder.js';
export type {
  LadderLogEntry,
  LadderReport,
  LadderStep,
  LadderStepSwitches,
  ResetLadderOptions,
  StepOutcome,
  StepResult as LadderStepResult,
} from './actors/reset-ladder.js';
export { execFileRunner, ladderBluezPort, systemClock } from './actors/reset-ladder-ports.js';
export type {
  CommandResult,
  CommandRunner,
  LadderBluezPort,
  LadderClock,
} from './actors/reset-ladder-ports.js';

// Connection actor ↔ pool: what a pooled actor reports to its parent, what the pool knows of each
// child, and the failure class of one attempt (validation and phantom included).
export type { ConnectionReport } from './machines/connection-contracts.js';
export type { PoolChildState } from './machines/adapter-pool-logic.js';

// Prometheus metrics (prom-client is an optional peer dependency, loaded only by this function).
export {
  createPrometheusMetrics,
  type PrometheusMetrics,
  type PrometheusMetricsOptions,
} from './metrics/prometheus.js';

// D-Bus authentication (issue 11): a tcp: bus (VM, container, remote gateway) authenticates with
// ANONYMOUS by default; `authMethods` on openBluez/establishConnection chooses explicitly.
export { DBUS_AUTH_METHODS, defaultAuthMethods, validateAuthMethods } from './bluez/index.js';
export type { DBusAuthMethod } from './bluez/index.js';

// Notification watchdog, keep-alive and stall guard (issue 10): the watchdog machine the connection
// actor invokes in `connected`, the standalone watchdog for a device the caller holds, the options.
export { watchdogMachine } from './machines/watchdog.js';
export type {
  WatchdogContext,
  WatchdogEmitted,
  WatchdogInput,
  WatchdogProbe,
  ZombieEvent,
  ZombieReport,
} from './machines/watchdog.js';
export { ConnectionWatchdog } from './connection/connection-watchdog.js';
export type {
  ConnectionWatchdogEvents,
  ConnectionWatchdogOptions,
  WatchedDevice,
} from './connection/connection-watchdog.js';
export { WATCHDOG_PRESETS } from './machines/profiles.js';
export type { WatchdogPresetName } from './machines/profiles.js';
export { DEFAULT_STALL_GUARD_MS } from './connection/watchdog-options.js';
export type { WatchdogConfig, WatchdogOptions, ZombieAction } from './connection/watchdog-options.js';
export type { ConnectionClosed } from './connection/establish.js';
export { StalledError } from './bluez/errors.js';
export type { StallGuardAction } from './bluez/errors.js';
export { stallGuardOf } from './connection/establish.js';
export { StallGuard } from './stall-guard/stall-guard.js';
export type { EventLoopDelay, StallGuardOptions, StallReport } from './stall-guard/stall-guard.js';
export { stallGuardLocks } from './stall-guard/lock-hook.js';
export type { HeldLockHandle, StallGuardLockHook } from './stall-guard/lock-hook.js';
// ---- cross-process locks and managed discovery --------------------------------------------------
export {
  acquireScanLock,
  acquireSlotLock,
  heldLocks,
  lockHolders,
  LockPathError,
  LockPermissionError,
  LockUnavailableError,
  resolveScanLockOptions,
  resolveSlotLockOptions,
  scanLockPath,
  slotLockPath,
  SCAN_LOCK_DEFAULTS,
  SLOT_LOCK_DEFAULTS,
  type AcquireOptions,
  type HeldLock,
  type LockAcquisition,
  type LockFileState,
  type LockHolderQuery,
  type ScanLockOptions,
  type SlotLockOptions,
} from './lock/index.js';
export {
  findDevice,
  openDiscoverySessions,
  resolveDiscoveryOptions,
  seenRecently,
  startDiscoveryOwner,
  type DiscoveryEvent,
  type DiscoveryOptions,
  type DiscoveryOwner,
  type FindDeviceOptions,
  type ResolvedDiscovery,
} from './discovery/index.js';
