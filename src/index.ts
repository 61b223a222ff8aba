/**
 * bluez-connection-manager: keeps BLE connections alive on Linux BlueZ.
 *
 * The public API grows issue by issue; see README.md for what is available.
 * @packageDocumentation
 */
export const VERSION = '0.1.0';

// BlueZ over D-Bus (issue 3): typed errors and their SPEC §5 classification, input validators,
// and the bounded, signal-driven client that the machines are built on.
export {
  AbortedError,
  AdapterError,
  AdapterNotReadyError,
  BluezError,
  BluezUnavailableError,
  BusLostError,
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
