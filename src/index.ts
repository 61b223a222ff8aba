/**
 * bluez-connection-manager: keeps BLE connections alive on Linux BlueZ.
 *
 * This entry point is what an app needs: one managed connection, the adapter pool, the watchdog,
 * locks and discovery shared with other services, the typed errors and metrics. The machines and
 * their building blocks (for custom runtimes, model-based tests, diagrams) are in
 * `bluez-connection-manager/machines`; the BlueZ simulator for tests is in
 * `bluez-connection-manager/testing`. docs/public-surface.txt lists every export; a change to it is
 * a deliberate decision (test/api).
 * @packageDocumentation
 */
import { createRequire } from 'node:module';

/** This package's version, read from its own package.json (one directory above dist/ and src/). */
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string })
  .version;

// ---- one managed connection ----------------------------------------------------------------------
export { createConnectionActor, establishConnection } from './connection/establish.js';
export type {
  AttemptReport,
  ConnectionActor,
  ConnectionClosed,
  ManagedConnection,
} from './connection/establish.js';
export { CONNECTION_DEFAULTS } from './connection/options.js';
export type {
  ConnectionActorOptions,
  ConnectionLogger,
  ConnectionOptions,
  EstablishOptions,
  Inspect,
} from './connection/options.js';
export { characteristicExists, gattNotEmpty, readCharacteristic } from './connection/validators.js';
export type { ValidationContext, Validator } from './connection/validators.js';
export type { ConnectionEmitted } from './machines/connection.js';
export type { ConnectionAttempt, FailureCause, FailureClass } from './machines/connection-contracts.js';
export { createStateTrail } from './machines/state-trail.js';
export type { StateTrail } from './machines/state-trail.js';

// ---- escalation profiles ---------------------------------------------------------------------------
export { EscalationPolicy } from './machines/escalation-policy.js';
export { ESCALATION_PROFILES } from './machines/profiles.js';
export type { EscalationProfileName } from './machines/profiles.js';
export type { EscalationAction, EscalationConfig } from './machines/escalation.js';

// ---- zombie links, keep-alive, a blocked event loop ------------------------------------------------
export { ConnectionWatchdog } from './connection/connection-watchdog.js';
export type {
  ConnectionWatchdogEvents,
  ConnectionWatchdogOptions,
  WatchedDevice,
} from './connection/connection-watchdog.js';
export { WATCHDOG_PRESETS } from './machines/profiles.js';
export type { WatchdogPresetName } from './machines/profiles.js';
export type { WatchdogOptions, ZombieAction } from './connection/watchdog-options.js';
export type { ZombieEvent } from './machines/watchdog.js';
export type { EventLoopDelay } from './stall-guard/stall-guard.js';

// ---- several devices: the adapter pool ------------------------------------------------------------
export { createAdapterPool } from './pool/create-adapter-pool.js';
export type {
  AdapterPool,
  AdapterPoolOptions,
  PoolAdapterSnapshot,
  PoolConnectOptions,
  PoolSnapshot,
  PooledConnection,
} from './pool/create-adapter-pool.js';
export type { AdapterStrategy, PoolDeviceStatus } from './machines/adapter-pool-logic.js';
export type { PoolEmitted } from './machines/adapter-pool-steps.js';
export type { LadderStepSwitches, ResetLadderOptions } from './actors/reset-ladder.js';

// ---- several services on one adapter: locks and managed discovery ---------------------------------
export { acquireScanLock, acquireSlotLock, lockHolders } from './lock/index.js';
export type {
  AcquireOptions,
  LockAcquisition,
  LockFileState,
  LockHolderQuery,
  ScanLockOptions,
  SlotLockOptions,
} from './lock/index.js';
export { findDevice, startDiscoveryOwner } from './discovery/index.js';
export type {
  DiscoveryEvent,
  DiscoveryOptions,
  DiscoveryOwner,
  FindDeviceOptions,
} from './discovery/index.js';

// ---- BlueZ itself ----------------------------------------------------------------------------------
export { openBluez } from './bluez/index.js';
export type {
  AdapterSnapshot,
  BluezClient,
  DBusAuthMethod,
  DeviceSnapshot,
  GattCharacteristicSnapshot,
  GattServiceSnapshot,
  GattServiceTree,
  OpenBluezOptions,
  VerifiedDisconnectOutcome,
} from './bluez/index.js';

// ---- errors ------------------------------------------------------------------------------------------
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
} from './bluez/index.js';
export { StalledError } from './bluez/errors.js';
export { LockPathError, LockPermissionError, LockUnavailableError } from './lock/index.js';
export type { AttemptRecord, Classification, ErrorClass } from './bluez/index.js';

// ---- metrics (prom-client is an optional peer dependency, loaded only by this function) ----------
export { createPrometheusMetrics } from './metrics/prometheus.js';
export type { MetricsRegistry, PrometheusMetrics, PrometheusMetricsOptions } from './metrics/prometheus.js';

// ---- D-Bus call bound (issue 14: in-flight calls per connection, LimitsExceeded) ------------------
export { BusLimitsExceededError } from './bluez/index.js';
export { DEFAULT_MAX_IN_FLIGHT_CALLS } from './bluez/index.js';
