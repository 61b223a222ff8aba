import { startSimulatedBluez } from '../../src/testing/index.js';
import type { DeviceSpec, SimulatedBluez } from '../../src/testing/index.js';
import {
  CENTRAL_ADDRESS,
  INITIAL_RW_VALUE,
  LATE_CHAR_UUID,
  LATE_SERVICE_UUID,
  NOTIFY_CHAR_UUID,
  NOTIFY_INTERVAL_MS,
  PERIPHERAL_ADDRESS,
  PERIPHERAL_NAME,
  RW_CHAR_UUID,
  SERVICE_UUID,
} from './peripheral-spec.js';
import type { ConformanceTarget } from './target.js';

const CCC = '00002902-0000-1000-8000-00805f9b34fb';
const sig = (short: string): string => `0000${short}-0000-1000-8000-00805f9b34fb`;

/**
 * The peripheral as real bluetoothd 5.66 on btvirt's hci1 serves it: besides the test service,
 * its GATT database holds Generic Attribute (0x1801) and Device Information (0x180a), which a
 * central on 5.66 exports (Generic Access 0x1800 it keeps to itself).
 */
export const SIMULATED_PERIPHERAL: DeviceSpec = {
  address: PERIPHERAL_ADDRESS,
  name: PERIPHERAL_NAME,
  addressType: 'public',
  uuids: [SERVICE_UUID],
  inRange: ['hci0'],
  services: [
    {
      uuid: sig('1801'),
      characteristics: [
        { uuid: sig('2a05'), flags: ['indicate'], descriptors: [{ uuid: CCC }] },
        { uuid: sig('2b29'), flags: ['read', 'write'], value: [0] },
        { uuid: sig('2b2a'), flags: ['read'], value: new Array<number>(16).fill(0) },
        { uuid: sig('2b3a'), flags: ['read'], value: [0] },
      ],
    },
    {
      uuid: sig('180a'),
      characteristics: [
        { uuid: sig('2a50'), flags: ['read'], value: [1, 0x6b, 0x1d, 0x46, 0x02, 0x42, 0x05] },
      ],
    },
    {
      uuid: SERVICE_UUID,
      characteristics: [
        { uuid: RW_CHAR_UUID, flags: ['read', 'write'], value: INITIAL_RW_VALUE },
        {
          uuid: NOTIFY_CHAR_UUID,
          flags: ['read', 'notify'],
          value: [0],
          notifyIntervalMs: NOTIFY_INTERVAL_MS,
          descriptors: [{ uuid: CCC }],
        },
      ],
    },
  ],
};

/** Realistic latencies scaled down: scenario waits are scaled by the same factor. */
const LATENCY_SCALE = 0.1;

/** The project's simulator on a private dbus-daemon; a fresh one per reset(). */
export class SimulatorTarget implements ConformanceTarget {
  readonly name = 'simulator';
  readonly timeScale = LATENCY_SCALE;
  private current: SimulatedBluez | undefined;

  get busAddress(): string {
    return this.sim().address;
  }

  get temporaryTimeoutMs(): number {
    return this.sim().sim.timing.temporaryTimeoutMs;
  }

  async reset(): Promise<void> {
    await this.current?.stop();
    this.current = await startSimulatedBluez({
      latencyScale: LATENCY_SCALE,
      // Debian's bluetoothd 5.66 as the guest runs it: main.conf's default Cache=always, the
      // pending-connect error of 5.66–5.81, Failed "Input/output error" for Connect on an
      // unpowered adapter, connectable devices kept by a power-off underneath bluetoothd.
      behaviour: 'bluez-5.66',
      scenario: {
        adapters: [
          { name: 'hci0', address: CENTRAL_ADDRESS },
          { name: 'hci1', address: PERIPHERAL_ADDRESS },
        ],
        devices: [SIMULATED_PERIPHERAL],
      },
    });
  }

  async powerOff(adapter: 'hci0' | 'hci1'): Promise<void> {
    this.sim().sim.inject({ kind: 'power-off', target: { adapter } });
  }

  async linkLoss(): Promise<void> {
    // On real BlueZ the peripheral's radio goes off: the link drops and it is heard no more.
    this.sim().sim.setInRange(PERIPHERAL_ADDRESS, false);
  }

  async stopAdvertising(): Promise<void> {
    this.sim().sim.setInRange(PERIPHERAL_ADDRESS, false);
  }

  async startAdvertising(): Promise<void> {
    this.sim().sim.setInRange(PERIPHERAL_ADDRESS, ['hci0']);
  }

  async silenceNotifications(): Promise<void> {
    this.sim().sim.inject({ kind: 'zombie', target: { device: PERIPHERAL_ADDRESS } });
  }

  async addLateService(): Promise<void> {
    // The same service the real target's HostPeripheral registers late.
    this.sim().sim.addService(PERIPHERAL_ADDRESS, {
      uuid: LATE_SERVICE_UUID,
      characteristics: [{ uuid: LATE_CHAR_UUID, flags: ['read'], value: [7] }],
    });
  }

  async restartBluetoothd(): Promise<void> {
    await this.sim().sim.restartDaemon({ downMs: 100 });
  }

  async peripheralRwValue(): Promise<number[]> {
    const writes = this.sim().sim.gattWrites.filter((w) => w.uuid === RW_CHAR_UUID);
    return writes[writes.length - 1]?.value ?? INITIAL_RW_VALUE;
  }

  async close(): Promise<void> {
    await this.current?.stop();
    this.current = undefined;
  }

  private sim(): SimulatedBluez {
    if (!this.current) throw new Error('simulator not started (reset() first)');
    return this.current;
  }
}
