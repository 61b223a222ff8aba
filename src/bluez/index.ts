/**
 * src/bluez: the only code that speaks D-Bus. One shared bus per address, calls with deadlines
 * and AbortSignals, an ObjectManager mirror fed by signals, typed errors and their classification.
 * @packageDocumentation
 */
export { openBluez } from './client.js';
export type {
  BluezClient,
  ConnectOptions,
  NotifySubscription,
  OpenBluezOptions,
  PowerOptions,
  VerifiedDisconnectOutcome,
  WriteOptions,
} from './client-types.js';
export { BluezMirror, MIRROR_MATCH_RULES, WaitTimeoutError } from './mirror.js';
export type {
  MirrorChange,
  MirrorChangeBatch,
  MirrorEvents,
  MirrorWaitOptions,
  RebuildReason,
} from './mirror.js';
export {
  DBUS_AUTH_METHODS,
  SharedBus,
  acquireBus,
  defaultAuthMethods,
  defaultBusAddress,
  validateAuthMethods,
} from './bus.js';
export type {
  BusCallOptions,
  BusState,
  DBusAuthMethod,
  MethodCall,
  SharedBusEvents,
  SignalMessage,
} from './bus.js';
export { DEFAULTS } from './context.js';
export type { BluezDefaults } from './context.js';
export {
  AbortedError,
  AdapterError,
  AdapterNotReadyError,
  BluezError,
  BluezUnavailableError,
  BusLimitsExceededError,
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
  adviceFor,
  classifyError,
  isAbortError,
  toBluezError,
} from './errors.js';
export type {
  AttemptRecord,
  BluezErrorOptions,
  Classification,
  ClassifyContext,
  DefaultAction,
  ErrorClass,
  ErrorContext,
} from './errors.js';
export {
  BLUEZ_ROOT,
  adapterOfPath,
  adapterPath,
  devicePath,
  devicePathOf,
  validateAdapterName,
  validateMac,
  validateObjectPath,
  validateSignal,
  validateTimeoutMs,
  validateUuid,
} from './validate.js';
export { validateCharacteristicPath } from './gatt.js';
export { createNodeBle } from './node-ble.js';
export type {
  NodeBleAdapter,
  NodeBleBluetooth,
  NodeBleDevice,
  NodeBleGattCharacteristic,
  NodeBleGattServer,
  NodeBleGattService,
} from './node-ble.js';
export type {
  AdapterSnapshot,
  CallOptions,
  DeviceSnapshot,
  GattCharacteristicSnapshot,
  GattDescriptorSnapshot,
  GattServiceSnapshot,
  GattServiceTree,
  WaitOptions,
} from './types.js';
export {
  DEFAULT_MAX_IN_FLIGHT_CALLS,
  MAX_IN_FLIGHT_CALLS_LIMIT,
  validateMaxInFlightCalls,
} from './call-gate.js';
export type { CallPriority } from './call-gate.js';
export type { BusLimits } from './bus.js';
