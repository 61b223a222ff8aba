import { Variant } from 'dbus-next';
import type { MessageBus } from 'dbus-next';
import { expect } from 'vitest';
import { devicePath, openBus, sleep } from './bus.js';
import {
  INITIAL_RW_VALUE,
  LATE_SERVICE_UUID,
  NOTIFY_CHAR_UUID,
  NOTIFY_INTERVAL_MS,
  PERIPHERAL_ADDRESS,
  PERIPHERAL_NAME,
  RW_CHAR_UUID,
  SERVICE_UUID,
} from './peripheral-spec.js';
import { gattShape, split, summarize } from './summarize.js';
import type { ConformanceTarget } from './target.js';
import type { TraceEvent, TraceRecorder } from './trace.js';

/** Everything a scenario gets: the target, a client bus with its trace, and the well-known paths. */
export interface ScenarioContext {
  target: ConformanceTarget;
  bus: MessageBus;
  trace: TraceRecorder;
  /** /org/bluez/hci0: the central adapter. */
  adapter: string;
  /** The peripheral's Device1 path under hci0. */
  dev: string;
  /** Scales a real-BlueZ wait (ms) to this target. */
  ms(realMs: number): number;
  /** Extra bus connections the scenario opened; closed after it. */
  extraBuses: MessageBus[];
}

/** JSON-able facts a scenario observed; compared between real BlueZ and the simulator. */
export type Observation = Record<string, unknown>;

export interface Scenario {
  name: string;
  run(ctx: ScenarioContext): Promise<Observation>;
}

export function createContext(
  target: ConformanceTarget,
  bus: MessageBus,
  trace: TraceRecorder,
): ScenarioContext {
  const adapter = '/org/bluez/hci0';
  return {
    target,
    bus,
    trace,
    adapter,
    dev: devicePath(adapter, PERIPHERAL_ADDRESS),
    ms: (realMs) => Math.max(20, Math.round(realMs * target.timeScale)),
    extraBuses: [],
  };
}

const ADAPTER = 'org.bluez.Adapter1';
const DEVICE = 'org.bluez.Device1';
const CHAR = 'org.bluez.GattCharacteristic1';
const PROPS = 'org.freedesktop.DBus.Properties';
const OM = 'org.freedesktop.DBus.ObjectManager';
/** Deadlines for real BlueZ under software emulation; generous on purpose (shared 2-core host). */
const FIND_MS = 20_000;
const CONNECT_MS = 30_000;

type Tree = Record<string, Record<string, Record<string, unknown>>>;

async function managedObjects(ctx: ScenarioContext): Promise<Tree> {
  const r = await ctx.trace.call('/', OM, 'GetManagedObjects');
  if (!r.ok) throw new Error(`GetManagedObjects failed: ${r.error}`);
  return r.body[0] as Tree;
}

const isProp = (path: string, key: string, value: unknown) => (e: TraceEvent) =>
  e.kind === 'props' && e.path === path && key in e.changed && e.changed[key] === value;
const isAdded = (path: string, iface: string) => (e: TraceEvent) =>
  e.kind === 'added' && e.path === path && iface in e.interfaces;
const isRemoved = (path: string, iface: string) => (e: TraceEvent) =>
  e.kind === 'removed' && e.path === path && e.interfaces.includes(iface);

/** Lets trailing signals of the previous step arrive before a trace is summarized. */
async function settle(ctx: ScenarioContext): Promise<void> {
  await sleep(ctx.ms(1_500));
}

/** LE discovery until the peripheral's Device1 exists, then discovery off again. */
async function discover(ctx: ScenarioContext): Promise<void> {
  const from = ctx.trace.mark();
  const filter = await ctx.trace.call(ctx.adapter, ADAPTER, 'SetDiscoveryFilter', 'a{sv}', [
    { Transport: new Variant('s', 'le') },
  ]);
  expect(filter).toMatchObject({ ok: true });
  expect(await ctx.trace.call(ctx.adapter, ADAPTER, 'StartDiscovery')).toMatchObject({ ok: true });
  await ctx.trace.waitFor(isAdded(ctx.dev, DEVICE), FIND_MS, 'the peripheral to be discovered', from);
  expect(await ctx.trace.call(ctx.adapter, ADAPTER, 'StopDiscovery')).toMatchObject({ ok: true });
  await ctx.trace.waitFor(isProp(ctx.adapter, 'Discovering', false), FIND_MS, 'Discovering=false', from);
}

async function connect(ctx: ScenarioContext): Promise<void> {
  const from = ctx.trace.mark();
  expect(await ctx.trace.call(ctx.dev, DEVICE, 'Connect', '', [], { timeoutMs: CONNECT_MS })).toMatchObject({
    ok: true,
  });
  await ctx.trace.waitFor(
    isProp(ctx.dev, 'ServicesResolved', true),
    CONNECT_MS,
    'ServicesResolved=true',
    from,
  );
}

async function characteristicPath(ctx: ScenarioContext, uuid: string): Promise<string> {
  const tree = await managedObjects(ctx);
  const path = Object.keys(tree).find(
    (p) => p.startsWith(`${ctx.dev}/`) && tree[p]?.[CHAR]?.['UUID'] === uuid,
  );
  if (!path) throw new Error(`characteristic ${uuid} not exported under ${ctx.dev}`);
  return path;
}

async function getProperty(
  ctx: ScenarioContext,
  path: string,
  iface: string,
  name: string,
): Promise<unknown> {
  const r = await ctx.trace.call(path, PROPS, 'Get', 'ss', [iface, name]);
  return r.ok ? r.body[0] : `error ${r.error}`;
}

/** Signals and call outcomes since `mark` (property reads the scenario made are left out). */
function observe(ctx: ScenarioContext, mark: number, drop: (s: string) => boolean = () => false) {
  const { signals, calls } = split(ctx.trace.events.slice(mark), ctx.dev);
  return {
    signals: signals.filter((s) => !drop(s)),
    calls: calls.filter(
      (s) => !s.endsWith('.Get → ok') && !s.endsWith('.GetManagedObjects → ok') && !drop(s),
    ),
  };
}

/** Whether `first` was received before `second` (both must be in the trace since `mark`). */
function before(ctx: ScenarioContext, mark: number, first: string, second: string): boolean | string {
  const all = summarize(ctx.trace.events.slice(mark), ctx.dev);
  const a = all.indexOf(first);
  const b = all.indexOf(second);
  if (a < 0 || b < 0) return `missing ${a < 0 ? first : second}`;
  return a < b;
}

/** The GATT objects removed since a mark, in arrival order, each as gattShape labels it. */
function gattObjectsRemoved(events: readonly TraceEvent[], before: Tree, dev: string): string[] {
  return events
    .filter((e): e is Extract<TraceEvent, { kind: 'removed' }> => e.kind === 'removed')
    .filter((e) => e.path.startsWith(`${dev}/`))
    .map((e) => gattShape({ [e.path]: before[e.path] ?? {} }, dev)[0] ?? `unknown ${e.path}`);
}

/** Whether every GATT removal since a mark arrived before the first GATT addition. */
function removalsBeforeFirstAdd(events: readonly TraceEvent[], dev: string): boolean {
  const gatt = events.filter(
    (e) => (e.kind === 'removed' || e.kind === 'added') && e.path.startsWith(`${dev}/`),
  );
  const firstAdd = gatt.findIndex((e) => e.kind === 'added');
  return firstAdd >= 0 && gatt.slice(firstAdd).every((e) => e.kind === 'added');
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'discovery finds the advertising peripheral',
    async run(ctx) {
      await discover(ctx);
      await settle(ctx);
      const tree = await managedObjects(ctx);
      const device = tree[ctx.dev]?.[DEVICE] ?? {};
      const seen = observe(ctx, 0);
      expect(seen.signals.indexOf('hci0.Discovering=true')).toBeLessThan(seen.signals.indexOf('+dev'));
      return {
        ...seen,
        // bluetoothd answers StartDiscovery when the kernel has started scanning, before any device is found.
        startReplyBeforeDeviceFound: before(ctx, 0, 'hci0.StartDiscovery → ok', '+dev'),
        device: {
          Address: device['Address'],
          AddressType: device['AddressType'],
          Name: device['Name'],
          Alias: device['Alias'],
          Adapter: device['Adapter'],
          Paired: device['Paired'],
          Connected: device['Connected'],
          ServicesResolved: device['ServicesResolved'],
          advertisesService: (device['UUIDs'] as string[] | undefined)?.includes(SERVICE_UUID) ?? false,
        },
        expectedName: device['Name'] === PERIPHERAL_NAME,
      };
    },
  },
  {
    name: 'connect exports GATT objects, then ServicesResolved',
    async run(ctx) {
      await discover(ctx);
      const mark = ctx.trace.mark();
      await connect(ctx);
      await settle(ctx);
      // bluetoothd 5.66 sometimes never signals Connected=true for an LE link: when its ATT
      // socket is up before mgmt's Device Connected event it logs "device_add_connection() …
      // is already connected" and emits nothing (seen in 2 of 12 runs). The property itself is
      // true, so the observation reads it instead of relying on the signal.
      const seen = observe(ctx, mark, (s) => s === 'dev.Connected=true');
      const gatt = seen.signals.indexOf('+gatt');
      const resolved = seen.signals.indexOf('dev.ServicesResolved=true');
      expect(gatt).toBeGreaterThanOrEqual(0);
      expect(resolved).toBeGreaterThan(gatt);
      return {
        ...seen,
        connectedAfterConnect: await getProperty(ctx, ctx.dev, DEVICE, 'Connected'),
        connectReturnsBeforeServicesResolved: before(
          ctx,
          mark,
          'dev.Connect → ok',
          'dev.ServicesResolved=true',
        ),
        gatt: gattShape(await managedObjects(ctx), ctx.dev),
      };
    },
  },
  {
    name: 'read, write and notify round trip',
    async run(ctx) {
      await discover(ctx);
      await connect(ctx);
      const rw = await characteristicPath(ctx, RW_CHAR_UUID);
      const nt = await characteristicPath(ctx, NOTIFY_CHAR_UUID);
      const mark = ctx.trace.mark();
      const read1 = await ctx.trace.call(rw, CHAR, 'ReadValue', 'a{sv}', [{}]);
      const write = await ctx.trace.call(rw, CHAR, 'WriteValue', 'aya{sv}', [Buffer.from([1, 2, 3]), {}]);
      const read2 = await ctx.trace.call(rw, CHAR, 'ReadValue', 'a{sv}', [{}]);
      const peripheralHolds = await ctx.target.peripheralRwValue();
      const notifyFrom = ctx.trace.mark();
      expect(await ctx.trace.call(nt, CHAR, 'StartNotify')).toMatchObject({ ok: true });
      const values: number[] = [];
      await ctx.trace.waitFor(
        (e) => {
          if (e.kind === 'props' && e.path === nt && Array.isArray(e.changed['Value'])) {
            values.push((e.changed['Value'] as number[])[0] ?? -1);
          }
          return values.length >= 3;
        },
        ctx.ms(10_000),
        'three notifications',
        notifyFrom,
      );
      expect(await ctx.trace.call(nt, CHAR, 'StopNotify')).toMatchObject({ ok: true });
      await settle(ctx);
      const increasing = values.every((v, i) => i === 0 || v > (values[i - 1] ?? 0));
      expect(increasing).toBe(true);
      return {
        ...observe(ctx, mark),
        firstRead: read1.ok ? read1.body[0] : read1.error,
        write: write.ok ? 'ok' : write.error,
        readAfterWrite: read2.ok ? read2.body[0] : read2.error,
        peripheralHolds,
        initialMatches: read1.ok && JSON.stringify(read1.body[0]) === JSON.stringify(INITIAL_RW_VALUE),
        notificationsIncrease: increasing,
        notifyingAfterStop: await getProperty(ctx, nt, CHAR, 'Notifying'),
      };
    },
  },
  {
    name: 'a peripheral that stops notifying stays connected (zombie)',
    async run(ctx) {
      await discover(ctx);
      await connect(ctx);
      const nt = await characteristicPath(ctx, NOTIFY_CHAR_UUID);
      const subscribed = ctx.trace.mark();
      expect(await ctx.trace.call(nt, CHAR, 'StartNotify')).toMatchObject({ ok: true });
      let seen = 0;
      await ctx.trace.waitFor(
        (e) => e.kind === 'props' && e.path === nt && 'Value' in e.changed && ++seen >= 2,
        ctx.ms(10_000),
        'two notifications',
        subscribed,
      );
      await ctx.target.silenceNotifications();
      // A notification already on its way may still arrive; silence is measured after that.
      await sleep(ctx.ms(NOTIFY_INTERVAL_MS * 2));
      const mark = ctx.trace.mark();
      await sleep(ctx.ms(NOTIFY_INTERVAL_MS * 10));
      const tree = await managedObjects(ctx);
      return {
        ...observe(ctx, mark),
        notificationsWhileSilent: ctx.trace.events
          .slice(mark)
          .filter((e) => e.kind === 'props' && e.path === nt && 'Value' in e.changed).length,
        connected: tree[ctx.dev]?.[DEVICE]?.['Connected'],
        notifying: tree[nt]?.[CHAR]?.['Notifying'],
      };
    },
  },
  {
    // A connect is made to stay pending by the peripheral not advertising: the kernel then
    // waits for an advertisement before it creates the link. (Racing two calls against a fast
    // connect gave "ok" or "Failed: Operation already in progress" at random on 5.66.)
    name: 'a second Connect while one is pending',
    async run(ctx) {
      await discover(ctx);
      await ctx.target.stopAdvertising();
      const mark = ctx.trace.mark();
      const first = ctx.trace.call(ctx.dev, DEVICE, 'Connect', '', [], { timeoutMs: CONNECT_MS });
      await sleep(ctx.ms(1_500));
      const second = await ctx.trace.call(ctx.dev, DEVICE, 'Connect', '', [], { timeoutMs: CONNECT_MS });
      await ctx.target.startAdvertising();
      const firstOutcome = await first;
      await ctx.trace.waitFor(
        isProp(ctx.dev, 'ServicesResolved', true),
        CONNECT_MS,
        'ServicesResolved=true',
        mark,
      );
      await settle(ctx);
      return {
        first: firstOutcome.ok ? 'ok' : firstOutcome.error,
        second: second.ok ? 'ok' : `${second.error}: ${second.text}`,
        // Connected=true is not always signalled on 5.66 (see the connect scenario).
        ...observe(ctx, mark, (s) => s === 'dev.Connected=true'),
      };
    },
  },
  {
    name: 'Connect on a powered-off adapter',
    async run(ctx) {
      await discover(ctx);
      const mark = ctx.trace.mark();
      await ctx.target.powerOff('hci0');
      await ctx.trace.waitFor(isProp(ctx.adapter, 'Powered', false), FIND_MS, 'hci0 Powered=false', mark);
      const result = await ctx.trace.call(ctx.dev, DEVICE, 'Connect', '', [], { timeoutMs: CONNECT_MS });
      await settle(ctx);
      const tree = await managedObjects(ctx);
      return {
        connect: result.ok ? 'ok' : result.error,
        ...observe(ctx, mark),
        deviceStillExported: Boolean(tree[ctx.dev]),
      };
    },
  },
  {
    name: 'Disconnect ordering',
    async run(ctx) {
      await discover(ctx);
      await connect(ctx);
      await settle(ctx);
      const mark = ctx.trace.mark();
      const result = await ctx.trace.call(ctx.dev, DEVICE, 'Disconnect', '', [], { timeoutMs: CONNECT_MS });
      await ctx.trace.waitFor(isProp(ctx.dev, 'Connected', false), CONNECT_MS, 'Connected=false', mark);
      await settle(ctx);
      const tree = await managedObjects(ctx);
      return {
        disconnect: result.ok ? 'ok' : result.error,
        ...observe(ctx, mark),
        // ServicesResolved=false goes out when the disconnect starts; the reply when the link is down.
        servicesResolvedFalseBeforeReply: before(
          ctx,
          mark,
          'dev.ServicesResolved=false',
          'dev.Disconnect → ok',
        ),
        deviceStillExported: Boolean(tree[ctx.dev]),
      };
    },
  },
  {
    name: 'RemoveDevice of a connected device',
    async run(ctx) {
      await discover(ctx);
      await connect(ctx);
      await settle(ctx);
      const mark = ctx.trace.mark();
      const result = await ctx.trace.call(ctx.adapter, ADAPTER, 'RemoveDevice', 'o', [ctx.dev], {
        timeoutMs: CONNECT_MS,
      });
      await ctx.trace.waitFor(isRemoved(ctx.dev, DEVICE), CONNECT_MS, 'Device1 removed', mark);
      await settle(ctx);
      return {
        removeDevice: result.ok ? 'ok' : result.error,
        ...observe(ctx, mark),
        replyBeforeDeviceRemoved: before(ctx, mark, 'hci0.RemoveDevice → ok', '-dev'),
      };
    },
  },
  {
    name: 'StartDiscovery twice from one client',
    async run(ctx) {
      const mark = ctx.trace.mark();
      const calls = [];
      calls.push(await ctx.trace.call(ctx.adapter, ADAPTER, 'StartDiscovery'));
      calls.push(await ctx.trace.call(ctx.adapter, ADAPTER, 'StartDiscovery'));
      const discovering = await getProperty(ctx, ctx.adapter, ADAPTER, 'Discovering');
      calls.push(await ctx.trace.call(ctx.adapter, ADAPTER, 'StopDiscovery'));
      await ctx.trace.waitFor(isProp(ctx.adapter, 'Discovering', false), FIND_MS, 'Discovering=false', mark);
      calls.push(await ctx.trace.call(ctx.adapter, ADAPTER, 'StopDiscovery'));
      await settle(ctx);
      return {
        results: calls.map((c) => (c.ok ? 'ok' : c.error)),
        discoveringBetween: discovering,
        ...observe(ctx, mark, (s) => s === '+dev'),
      };
    },
  },
  {
    name: 'StartDiscovery from two clients',
    async run(ctx) {
      const busB = openBus(ctx.target.busAddress);
      ctx.extraBuses.push(busB);
      const b = { bus: busB, client: 'B' };
      const mark = ctx.trace.mark();
      const a1 = await ctx.trace.call(ctx.adapter, ADAPTER, 'StartDiscovery');
      const b1 = await ctx.trace.call(ctx.adapter, ADAPTER, 'StartDiscovery', '', [], b);
      const a2 = await ctx.trace.call(ctx.adapter, ADAPTER, 'StopDiscovery');
      await sleep(ctx.ms(1_000));
      const afterAStops = await getProperty(ctx, ctx.adapter, ADAPTER, 'Discovering');
      const b2 = await ctx.trace.call(ctx.adapter, ADAPTER, 'StopDiscovery', '', [], b);
      await ctx.trace.waitFor(isProp(ctx.adapter, 'Discovering', false), FIND_MS, 'Discovering=false', mark);
      // A client that leaves the bus without StopDiscovery loses its session.
      const b3 = await ctx.trace.call(ctx.adapter, ADAPTER, 'StartDiscovery', '', [], b);
      await ctx.trace.waitFor(
        isProp(ctx.adapter, 'Discovering', true),
        FIND_MS,
        'Discovering=true',
        mark + 1,
      );
      const leaveMark = ctx.trace.mark();
      busB.disconnect();
      await ctx.trace.waitFor(
        isProp(ctx.adapter, 'Discovering', false),
        FIND_MS,
        'Discovering=false',
        leaveMark,
      );
      await settle(ctx);
      return {
        results: [a1, b1, a2, b2, b3].map((c) => (c.ok ? 'ok' : c.error)),
        discoveringAfterFirstClientStopped: afterAStops,
        ...observe(ctx, mark, (s) => s === '+dev'),
      };
    },
  },
  {
    name: 'peripheral gone (link loss)',
    async run(ctx) {
      await discover(ctx);
      await connect(ctx);
      await settle(ctx);
      const mark = ctx.trace.mark();
      await ctx.target.linkLoss();
      await ctx.trace.waitFor(isProp(ctx.dev, 'Connected', false), CONNECT_MS, 'Connected=false', mark);
      await settle(ctx);
      const tree = await managedObjects(ctx);
      return {
        ...observe(ctx, mark),
        deviceStillExported: Boolean(tree[ctx.dev]),
        gattLeft: gattShape(tree, ctx.dev),
      };
    },
  },
  {
    name: 'device object after the peripheral stops advertising',
    async run(ctx) {
      await discover(ctx);
      const mark = ctx.trace.mark();
      await ctx.target.stopAdvertising();
      const presentRightAfter = Boolean((await managedObjects(ctx))[ctx.dev]);
      const timeout = ctx.target.temporaryTimeoutMs;
      const removed = await ctx.trace
        .waitFor(isRemoved(ctx.dev, DEVICE), timeout + ctx.ms(15_000), 'Device1 removed', mark)
        .then(
          () => true,
          () => false,
        );
      await settle(ctx);
      const connect = await ctx.trace.call(ctx.dev, DEVICE, 'Connect', '', [], { timeoutMs: CONNECT_MS });
      return {
        presentRightAfter,
        removedWithinTemporaryTimeout: removed,
        connectAfterwards: connect.ok ? 'ok' : connect.error,
        ...observe(ctx, mark),
      };
    },
  },
  {
    name: 'a service added by a connected peripheral reaches the central',
    async run(ctx) {
      await discover(ctx);
      await connect(ctx);
      await settle(ctx);
      const before = await managedObjects(ctx);
      const mark = ctx.trace.mark();
      await ctx.target.addLateService();
      await ctx.trace.waitFor(
        (e) => e.kind === 'added' && e.interfaces['org.bluez.GattService1']?.['UUID'] === LATE_SERVICE_UUID,
        CONNECT_MS,
        'the late service to be exported',
        mark,
      );
      await settle(ctx);
      const tree = await managedObjects(ctx);
      return {
        ...observe(ctx, mark),
        // Service Changed, object by object: which GATT objects went, in what order, and whether
        // every removal came before the first re-export (bluetoothd removes the changed range's
        // objects one InterfacesRemoved at a time, then exports the re-discovered tree).
        removedInOrder: gattObjectsRemoved(ctx.trace.events.slice(mark), before, ctx.dev),
        removalsBeforeFirstAdd: removalsBeforeFirstAdd(ctx.trace.events.slice(mark), ctx.dev),
        gatt: gattShape(tree, ctx.dev),
        stillConnected: tree[ctx.dev]?.[DEVICE]?.['Connected'],
      };
    },
  },
  {
    name: 'calls on an unknown device path',
    async run(ctx) {
      const ghost = devicePath(ctx.adapter, '11:22:33:44:55:66');
      const mark = ctx.trace.mark();
      await ctx.trace.call(ghost, DEVICE, 'Connect');
      await ctx.trace.call(ghost, DEVICE, 'Disconnect');
      await ctx.trace.call(ghost, PROPS, 'Get', 'ss', [DEVICE, 'Connected']);
      await ctx.trace.call(ghost, PROPS, 'GetAll', 's', [DEVICE]);
      await ctx.trace.call(ctx.adapter, ADAPTER, 'RemoveDevice', 'o', [ghost]);
      await ctx.trace.call('/org/bluez/hci9', ADAPTER, 'StartDiscovery');
      return observe(ctx, mark);
    },
  },
  {
    name: 'bluetoothd restart',
    async run(ctx) {
      await discover(ctx);
      await connect(ctx);
      await settle(ctx);
      const mark = ctx.trace.mark();
      await ctx.target.restartBluetoothd();
      await ctx.trace.waitFor(
        (e) => e.kind === 'owner' && e.present,
        CONNECT_MS,
        'org.bluez to come back',
        mark,
      );
      await settle(ctx);
      const tree = await managedObjects(ctx);
      const adapters = Object.keys(tree)
        .filter((p) => tree[p]?.[ADAPTER])
        .sort();
      return {
        // hci1 is the peripheral's adapter on real BlueZ; which adapter bluetoothd announces first is mgmt index order.
        // Whether an adapter comes back already powered (Powered=true inside InterfacesAdded) or
        // powers on after it appeared is a race in bluetoothd; poweredAfter records the outcome.
        ...observe(ctx, mark, (s) => s === '+hci1' || s === '-hci1' || s === 'hci0.Powered=true'),
        adaptersAfter: adapters,
        poweredAfter: adapters.map((p) => tree[p]?.[ADAPTER]?.['Powered']),
        deviceAfter: tree[ctx.dev]?.[DEVICE]
          ? { Connected: tree[ctx.dev]?.[DEVICE]?.['Connected'], Paired: tree[ctx.dev]?.[DEVICE]?.['Paired'] }
          : 'absent',
      };
    },
  },
];
