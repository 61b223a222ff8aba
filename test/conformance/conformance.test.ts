import { SimulatorTarget } from './sim-target.js';
import { defineConformanceSuite } from './suite.js';

// The simulator half of the conformance suite: the same scenarios as test/bluez-vm, compared
// with the observations recorded from real bluetoothd 5.66 (golden/bluez-5.66.json).
defineConformanceSuite({
  title: 'conformance: the simulator behaves like bluetoothd 5.66',
  createTarget: async () => new SimulatorTarget(),
  hookTimeoutMs: 20_000,
  testTimeoutMs: 60_000,
});
