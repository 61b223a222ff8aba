/**
 * Test support: a private dbus-daemon launcher and a BlueZ simulator that speaks
 * the real org.bluez D-Bus API, so apps can be tested without Bluetooth hardware.
 * @packageDocumentation
 */
export {
  startPrivateBus,
  findDbusDaemon,
  DbusDaemonNotFoundError,
  PrivateBusStartError,
} from './private-bus.js';
export type { PrivateBus, PrivateBusOptions } from './private-bus.js';
export type * from './simulator/types.js';
