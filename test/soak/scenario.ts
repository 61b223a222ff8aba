/**
 * The soak's scenarios as data, and fast-check's arbitraries that generate them: a few adapters, a
 * few devices, faults from the whole simulator catalogue (src/testing/simulator/faults.ts) at random
 * moments, and cancellations by AbortSignal. A scenario is plain JSON, so a failing one prints
 * whole and its seed replays it.
 */
import fc from 'fast-check';
import type { FaultSpec } from '../../src/testing/index.js';

/** Which public API the cycle uses, as an app would. */
export type SoakApi = 'pool' | 'establish';

/** A fault aimed at one device (optionally on one adapter), injected `atMs` after the cycle starts. */
export type DeviceFault =
  | { kind: 'stale-in-progress' }
  | { kind: 'rf-abort'; count: number; linkUpMs: number }
  | { kind: 'fail-connect'; count: number; errorName: string; message: string }
  | { kind: 'link-drop'; afterMs: number }
  | { kind: 'zombie' }
  | { kind: 'late-gatt'; ms: number }
  | { kind: 'empty-gatt'; count: number }
  | { kind: 'hang'; member: 'Connect' | 'Disconnect'; count: number }
  | { kind: 'disappear'; forMs: number }
  | { kind: 'silent-connected'; count: number }
  | { kind: 'connect-latency'; ms: number };

/** A fault aimed at an adapter or at bluetoothd itself. */
export type HostFault =
  | { kind: 'restart-daemon'; downMs: number; crash: boolean }
  | { kind: 'bus-stall'; ms: number }
  | { kind: 'remove-adapter'; adapter: number; forMs: number }
  | { kind: 'power-off'; adapter: number }
  | { kind: 'slot-limit'; adapter: number; slots: number }
  | { kind: 'external-scanner'; adapter: number };

export interface SoakDevice {
  /** Adapter indexes that hear it (never empty). */
  inRange: number[];
  /** Adapter indexes whose bluetoothd cache holds it at start (a subset of inRange). */
  knownOn: number[];
  /**
   * Adapter indexes (a subset of knownOn) where a phantom link to it exists before the app starts:
   * Connected without services, a stale link another process left (the `phantom` fault).
   */
  phantomOn: number[];
  /** Notification watchdog (the app subscribes to notifications after every connect). */
  watchdog: boolean;
  /** Cancel the device's connect with an AbortSignal this long after the cycle starts. */
  abortAtMs: number | null;
  faults: Array<{ atMs: number; adapter: number | null; fault: DeviceFault }>;
}

export interface SoakScenario {
  api: SoakApi;
  adapters: number;
  devices: SoakDevice[];
  hostFaults: Array<{ atMs: number; fault: HostFault }>;
}

/** The window in which faults are injected; every fault still active is cleared at its end. */
export const FAULT_WINDOW_MS = 120;

const at = fc.integer({ min: 0, max: 90 });

const deviceFault: fc.Arbitrary<DeviceFault> = fc.oneof(
  fc.constant({ kind: 'stale-in-progress' as const }),
  fc.record({
    kind: fc.constant('rf-abort' as const),
    count: fc.integer({ min: 1, max: 3 }),
    linkUpMs: fc.integer({ min: 0, max: 30 }),
  }),
  fc.record({
    kind: fc.constant('fail-connect' as const),
    count: fc.integer({ min: 1, max: 2 }),
    errorName: fc.constantFrom(
      'org.bluez.Error.Failed',
      'org.bluez.Error.InProgress',
      'org.bluez.Error.NotReady',
      'org.bluez.Error.AlreadyConnected',
    ),
    message: fc.constantFrom(
      'le-connection-abort-by-local',
      'Operation already in progress',
      'Software caused connection abort',
    ),
  }),
  fc.record({ kind: fc.constant('link-drop' as const), afterMs: fc.integer({ min: 0, max: 80 }) }),
  fc.constant({ kind: 'zombie' as const }),
  fc.record({ kind: fc.constant('late-gatt' as const), ms: fc.integer({ min: 5, max: 80 }) }),
  fc.record({ kind: fc.constant('empty-gatt' as const), count: fc.integer({ min: 1, max: 2 }) }),
  fc.record({
    kind: fc.constant('hang' as const),
    member: fc.constantFrom('Connect' as const, 'Disconnect' as const),
    count: fc.constant(1),
  }),
  fc.record({ kind: fc.constant('disappear' as const), forMs: fc.integer({ min: 20, max: 200 }) }),
  fc.record({ kind: fc.constant('silent-connected' as const), count: fc.constant(1) }),
  fc.record({ kind: fc.constant('connect-latency' as const), ms: fc.integer({ min: 5, max: 100 }) }),
);

function hostFault(adapters: number): fc.Arbitrary<HostFault> {
  const adapter = fc.integer({ min: 0, max: adapters - 1 });
  return fc.oneof(
    fc.record({
      kind: fc.constant('restart-daemon' as const),
      downMs: fc.integer({ min: 0, max: 60 }),
      crash: fc.boolean(),
    }),
    fc.record({ kind: fc.constant('bus-stall' as const), ms: fc.integer({ min: 10, max: 150 }) }),
    fc.record({
      kind: fc.constant('remove-adapter' as const),
      adapter,
      forMs: fc.integer({ min: 20, max: 200 }),
    }),
    fc.record({ kind: fc.constant('power-off' as const), adapter }),
    fc.record({ kind: fc.constant('slot-limit' as const), adapter, slots: fc.integer({ min: 1, max: 2 }) }),
    fc.record({ kind: fc.constant('external-scanner' as const), adapter }),
  );
}

/** An index subset of 0..n-1 that is never empty. */
function someOf(n: number): fc.Arbitrary<number[]> {
  const all = [...Array(n).keys()];
  return fc.subarray(all, { minLength: 1 });
}

function device(adapters: number): fc.Arbitrary<SoakDevice> {
  return someOf(adapters).chain((inRange) =>
    fc.subarray(inRange).chain((knownOn) =>
      fc.record({
        inRange: fc.constant(inRange),
        knownOn: fc.constant(knownOn),
        phantomOn: fc.subarray(knownOn),
        watchdog: fc.boolean(),
        // One device in five is cancelled, at a random moment.
        abortAtMs: fc.oneof(
          { weight: 4, arbitrary: fc.constant(null) },
          { weight: 1, arbitrary: fc.integer({ min: 0, max: 200 }) },
        ),
        faults: fc.array(
          fc.record({
            atMs: at,
            adapter: fc.option(fc.integer({ min: 0, max: adapters - 1 }), { nil: null }),
            fault: deviceFault,
          }),
          { maxLength: 3 },
        ),
      }),
    ),
  );
}

/** One cycle's scenario: 1–3 adapters, 1–4 devices, up to 3 faults per device and 2 on the host. */
export const soakScenario: fc.Arbitrary<SoakScenario> = fc.integer({ min: 1, max: 3 }).chain((adapters) =>
  fc.record({
    api: fc.constantFrom<SoakApi>('pool', 'establish'),
    adapters: fc.constant(adapters),
    devices: fc.array(device(adapters), { minLength: 1, maxLength: 4 }),
    hostFaults: fc.array(fc.record({ atMs: at, fault: hostFault(adapters) }), { maxLength: 2 }),
  }),
);

export const adapterName = (i: number): string => `hci${i}`;
/** Device `i`'s address; `lane` (0 by default) keeps the devices of concurrent lanes apart. */
export const deviceAddress = (i: number, lane = 0): string =>
  `C0:FF:EE:00:${lane.toString(16).padStart(2, '0').toUpperCase()}:${(i + 1).toString(16).padStart(2, '0').toUpperCase()}`;

/** The simulator fault for a device fault. */
export function deviceFaultSpec(address: string, adapter: string | null, fault: DeviceFault): FaultSpec {
  const target = adapter === null ? { device: address } : { device: address, adapter };
  switch (fault.kind) {
    case 'hang':
      return {
        kind: 'hang',
        target,
        interface: 'org.bluez.Device1',
        member: fault.member,
        count: fault.count,
      };
    default:
      return { ...fault, target } as FaultSpec;
  }
}

/** The simulator fault for a host fault. */
export function hostFaultSpec(fault: HostFault): FaultSpec {
  switch (fault.kind) {
    case 'restart-daemon':
      return { kind: 'restart-daemon', target: { daemon: true }, downMs: fault.downMs, crash: fault.crash };
    case 'bus-stall':
      return { kind: 'bus-stall', target: { daemon: true }, ms: fault.ms };
    case 'remove-adapter':
      return { kind: 'remove-adapter', target: { adapter: adapterName(fault.adapter) }, forMs: fault.forMs };
    case 'power-off':
      return { kind: 'power-off', target: { adapter: adapterName(fault.adapter) } };
    case 'slot-limit':
      return { kind: 'slot-limit', target: { adapter: adapterName(fault.adapter) }, slots: fault.slots };
    case 'external-scanner':
      return { kind: 'external-scanner', target: { adapter: adapterName(fault.adapter) } };
  }
}
