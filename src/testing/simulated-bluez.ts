/**
 * One call for tests: a private dbus-daemon with the BlueZ simulator on it.
 */
import { startPrivateBus } from './private-bus.js';
import type { PrivateBus, PrivateBusOptions } from './private-bus.js';
import { BluezSimulator } from './simulator/simulator.js';
import type { BluezSimulatorOptions } from './simulator/simulator.js';

/** Options of {@link startSimulatedBluez}: the simulator's options without the bus address. */
export type SimulatedBluezOptions = Omit<BluezSimulatorOptions, 'busAddress'> & { bus?: PrivateBusOptions };

/** A running private bus plus simulator. */
export interface SimulatedBluez {
  bus: PrivateBus;
  sim: BluezSimulator;
  /** The bus address; set DBUS_SYSTEM_BUS_ADDRESS to it for node-ble or the library. */
  address: string;
  /** Stops the simulator, then the bus. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts a private bus and a simulator serving org.bluez on it.
 *
 * @example
 * const { sim, address, stop } = await startSimulatedBluez({ scenario, latencyScale: 0.01 });
 * process.env.DBUS_SYSTEM_BUS_ADDRESS = address;
 */
export async function startSimulatedBluez(opts: SimulatedBluezOptions = {}): Promise<SimulatedBluez> {
  const { bus: busOptions, ...simOptions } = opts;
  const bus = await startPrivateBus(busOptions);
  let sim: BluezSimulator;
  try {
    sim = await BluezSimulator.start({ ...simOptions, busAddress: bus.address });
  } catch (e) {
    await bus.stop();
    throw e;
  }
  let stopping: Promise<void> | undefined;
  return {
    bus,
    sim,
    address: bus.address,
    stop() {
      stopping ??= (async () => {
        await sim.stop();
        await bus.stop();
      })();
      return stopping;
    },
  };
}
