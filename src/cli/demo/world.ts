/**
 * The demo's simulated gateway: two adapters and a dozen BLE devices a real Victron / Raspberry Pi
 * gateway would manage, each with the BlueZ failure it is known for, and
 * what the library is expected to make of it. Every number of the real world (latencies, library
 * timeouts, fault durations) is multiplied by one latency scale, so the demo runs faster than real
 * time with the same proportions.
 */
import type { DeviceSpec, FaultSpec, Scenario, ServiceSpec } from '../../testing/index.js';
import type { PoolConnectOptions } from '../../index.js';

const uuid16 = (short: string): string => `0000${short}-0000-1000-8000-00805f9b34fb`;

/** GATT databases by device kind (enough for the built-in "GATT not empty" validation). */
const GATT = {
  bms: [
    {
      uuid: uuid16('ff00'),
      characteristics: [
        { uuid: uuid16('ff01'), flags: ['notify'], value: [0xdd, 0x03, 0x00] },
        { uuid: uuid16('ff02'), flags: ['write', 'write-without-response'] },
      ],
    },
  ],
  thermometer: [
    {
      uuid: uuid16('181a'),
      characteristics: [
        { uuid: uuid16('2a6e'), flags: ['read', 'notify'], value: [0x2a, 0x08] },
        { uuid: uuid16('2a6f'), flags: ['read', 'notify'], value: [0x36, 0x00] },
      ],
    },
  ],
  victron: [
    {
      uuid: '65970000-4bda-4c1e-af4b-551c4cf74769',
      characteristics: [{ uuid: '65970381-4bda-4c1e-af4b-551c4cf74769', flags: ['read', 'notify'] }],
    },
  ],
  relay: [
    {
      uuid: '6e400001-b5a3-f393-e0a9-e50e24dcca9e',
      characteristics: [
        { uuid: '6e400002-b5a3-f393-e0a9-e50e24dcca9e', flags: ['write'] },
        { uuid: '6e400003-b5a3-f393-e0a9-e50e24dcca9e', flags: ['notify'], value: [0] },
      ],
    },
  ],
  battery: [
    {
      uuid: uuid16('180f'),
      characteristics: [{ uuid: uuid16('2a19'), flags: ['read', 'notify'], value: [91] }],
    },
  ],
} satisfies Record<string, ServiceSpec[]>;

/** What the demo expects a device to end as. */
export type ExpectedOutcome = 'connected' | 'failed';

/** One device of the demo with its story. */
export interface DemoDevice {
  readonly address: string;
  readonly name: string;
  /** The BlueZ trouble it brings, in a few words (shown in the table and the summary). */
  readonly trouble: string;
  readonly expect: ExpectedOutcome;
  /** Remote link losses the demo waits for (each must be followed by a reconnect). Default 0. */
  readonly linkLosses?: number;
  readonly spec: DeviceSpec;
  /** Faults armed before the pool starts (scaled). */
  readonly faults: readonly FaultSpec[];
  /** Per-device pool options (profile, attempts, phantom clearing). */
  readonly options: PoolConnectOptions;
}

/** One adapter of the demo. */
export interface DemoAdapter {
  readonly name: string;
  readonly alias: string;
  /** Links the simulated controller really holds. */
  readonly controllerSlots: number;
}

/** The whole demo world. */
export interface DemoWorld {
  readonly adapters: readonly DemoAdapter[];
  readonly devices: readonly DemoDevice[];
  /** The pool's configured links per adapter (the dongle's controller holds fewer). */
  readonly slotsPerAdapter: number;
  /**
   * Once every device has settled: this adapter loses power for `forMs` (a brown-out, a USB
   * reset) and every link on it drops; the demo waits until those devices are back.
   */
  readonly powerCut?: { readonly adapter: string; readonly forMs: number };
  readonly scenario: Scenario;
}

/**
 * Builds the demo world at latency scale `scale` (1 = real time).
 * `ms(x)` is a real-world duration scaled and rounded to at least 1 ms.
 */
export function demoWorld(scale: number): DemoWorld {
  const ms = (real: number): number => Math.max(1, Math.round(real * scale));
  const adapters: DemoAdapter[] = [
    // The pool is configured for 7 links per adapter (Broadcom/RPi); the USB dongle's CSR
    // controller refuses the 5th link, and nothing in BlueZ says so beforehand (docs/bluez-facts.md).
    { name: 'hci0', alias: 'onboard', controllerSlots: 7 },
    { name: 'hci1', alias: 'usb-dongle', controllerSlots: 4 },
  ];
  const both = ['hci0', 'hci1'];
  const device = (
    address: string,
    name: string,
    services: ServiceSpec[],
    extra: Partial<DeviceSpec> = {},
  ): DeviceSpec => ({ address, name, addressType: 'random', rssi: -70, knownOn: both, services, ...extra });

  const devices: DemoDevice[] = [
    {
      address: 'A4:C1:37:10:00:02',
      name: 'JBD-SP04S020 starter',
      trouble: 'phantom on hci0',
      expect: 'connected',
      // Only hci0 knows it, as a phantom a crashed process left behind (Connected, never resolved).
      spec: device('A4:C1:37:10:00:02', 'JBD-SP04S020', GATT.bms, { knownOn: ['hci0'] }),
      faults: [{ kind: 'phantom', target: { device: 'A4:C1:37:10:00:02', adapter: 'hci0' } }],
      options: { escalation: 'battery', closeInactiveConnections: true },
    },
    {
      address: 'A4:C1:37:10:00:01',
      name: 'JBD-SP04S034 house',
      trouble: 'RF abort',
      expect: 'connected',
      spec: device('A4:C1:37:10:00:01', 'JBD-SP04S034', GATT.bms, { rssi: -82 }),
      faults: [{ kind: 'rf-abort', target: { device: 'A4:C1:37:10:00:01' }, count: 1, linkUpMs: ms(200) }],
      options: { escalation: 'battery' },
    },
    {
      address: 'D3:5E:7D:20:00:03',
      name: 'SmartShunt HQ2145',
      trouble: 'stale InProgress',
      expect: 'connected',
      spec: device('D3:5E:7D:20:00:03', 'SmartShunt HQ2145', GATT.victron),
      faults: [{ kind: 'stale-in-progress', target: { device: 'D3:5E:7D:20:00:03' } }],
      options: { escalation: 'battery' },
    },
    {
      address: 'A4:C1:38:30:00:04',
      name: 'ATC_30004 fridge',
      trouble: 'late GATT (Telink)',
      expect: 'connected',
      spec: device('A4:C1:38:30:00:04', 'ATC_30004', GATT.thermometer),
      faults: [{ kind: 'late-gatt', target: { device: 'A4:C1:38:30:00:04' }, ms: ms(3000) }],
      options: { escalation: 'sensor' },
    },
    {
      address: 'A4:C1:38:30:00:05',
      name: 'ATC_30005 freezer',
      trouble: 'only hci1 hears it',
      expect: 'connected',
      spec: device('A4:C1:38:30:00:05', 'ATC_30005', GATT.thermometer, {
        inRange: ['hci1'],
        knownOn: ['hci1'],
        rssi: -88,
      }),
      faults: [],
      options: { escalation: 'sensor' },
    },
    {
      address: 'F0:F5:BD:40:00:06',
      name: 'ESP32 relay x4',
      trouble: 'empty GATT once',
      expect: 'connected',
      spec: device('F0:F5:BD:40:00:06', 'relay-x4', GATT.relay),
      faults: [{ kind: 'empty-gatt', target: { device: 'F0:F5:BD:40:00:06' }, count: 1 }],
      options: { escalation: 'onDemand' },
    },
    {
      address: 'E4:5F:01:50:00:07',
      name: 'Mopeka water tank',
      trouble: 'link drop after connect',
      expect: 'connected',
      linkLosses: 1,
      spec: device('E4:5F:01:50:00:07', 'M1015', GATT.battery),
      faults: [{ kind: 'link-drop', target: { device: 'E4:5F:01:50:00:07' }, afterMs: ms(1500) }],
      options: { escalation: 'sensor' },
    },
    {
      address: 'C4:D3:6A:60:00:08',
      name: 'BT-TH-6008 solar MPPT',
      trouble: 'Connect never answers',
      expect: 'connected',
      spec: device('C4:D3:6A:60:00:08', 'BT-TH-6008', GATT.relay),
      faults: [
        {
          kind: 'hang',
          target: { device: 'C4:D3:6A:60:00:08' },
          interface: 'org.bluez.Device1',
          member: 'Connect',
          count: 1,
        },
      ],
      options: { escalation: 'battery' },
    },
    {
      address: 'D3:5E:7D:20:00:09',
      name: 'Phoenix 12/800',
      trouble: 'none',
      expect: 'connected',
      spec: device('D3:5E:7D:20:00:09', 'Phoenix Inverter', GATT.victron),
      faults: [],
      options: {},
    },
    {
      address: 'A4:C1:38:70:00:10',
      name: 'GVH5075 cellar',
      trouble: 'none',
      expect: 'connected',
      spec: device('A4:C1:38:70:00:10', 'GVH5075_0010', GATT.thermometer),
      faults: [],
      options: { escalation: 'sensor' },
    },
    {
      address: 'E7:2C:1B:80:00:11',
      name: 'Ruuvi 0011 outdoor',
      trouble: 'none',
      expect: 'connected',
      spec: device('E7:2C:1B:80:00:11', 'Ruuvi 0011', GATT.battery, { rssi: -84 }),
      faults: [],
      options: { escalation: 'sensor' },
    },
    {
      address: '38:39:8F:90:00:12',
      name: 'SBDW-0012 garage door',
      trouble: 'battery dead',
      expect: 'failed',
      // BlueZ still caches it on both adapters, but it no longer advertises.
      spec: device('38:39:8F:90:00:12', 'SBDW-0012', GATT.battery, { inRange: false }),
      faults: [],
      options: { escalation: 'sensor', maxAttempts: 3 },
    },
  ];

  return {
    adapters,
    devices,
    slotsPerAdapter: 7,
    powerCut: { adapter: 'hci0', forMs: ms(3000) },
    scenario: {
      latencyScale: scale,
      adapters: adapters.map((a) => ({ name: a.name, alias: a.alias, slotLimit: a.controllerSlots })),
      devices: devices.map((d) => d.spec),
      faults: devices.flatMap((d) => d.faults),
    },
  };
}

/**
 * The library's timeouts at the demo's scale: the defaults of docs/defaults.md × scale, so a 20 s
 * attempt deadline stays 40 times a 500 ms connect, as on a real gateway.
 */
export function scaledPoolDefaults(scale: number) {
  const ms = (real: number): number => Math.max(1, Math.round(real * scale));
  return {
    attemptTimeoutMs: ms(20_000),
    disconnectTimeoutMs: ms(5_000),
    rediscoveryTimeoutMs: ms(10_000),
    lateGattDelaysMs: [ms(2000), ms(4000), ms(8000)],
    backoffMs: {
      inProgress: ms(250),
      aborted: ms(250),
      outOfSlots: ms(4000),
      notFound: ms(4000),
      notReady: ms(1000),
      noReply: ms(250),
      bluezGone: ms(2000),
      other: ms(100),
      validation: ms(250),
      phantom: ms(1000),
    },
  };
}
