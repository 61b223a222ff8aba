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
export { BluezSimulator } from './simulator/simulator.js';
export type {
  BluezSimulatorOptions,
  SimState,
  AdapterState,
  DeviceState,
  BluezBehaviour,
  GattWrite,
} from './simulator/simulator.js';
export { DEFAULT_TIMING, resolveTiming } from './simulator/timing.js';
export {
  validateScenario,
  validateFault,
  validateAdapterSpec,
  validateDeviceSpec,
} from './simulator/validate.js';
export { startSimulatedBluez } from './simulated-bluez.js';
export type { SimulatedBluez, SimulatedBluezOptions } from './simulated-bluez.js';
export { BEHAVIOUR_PRESETS, DEFAULT_BEHAVIOUR } from './simulator/simulator.js';
export type { BluezBehaviourOption, BluezBehaviourPreset } from './simulator/simulator.js';
export { validateBehaviour } from './simulator/validate.js';
export { validateServiceSpec } from './simulator/validate.js';
