/**
 * The soak harness: one cycle runs a generated {@link SoakScenario} through the library's public
 * API (the adapter pool, or establishConnection with keepAlive) against the BlueZ simulator on a
 * real private dbus-daemon, then checks the invariants:
 *
 * - every device ends connected, or failed with a typed library error (a class of this library with
 *   a `code`), or (cancelled) rejected with its AbortSignal's reason;
 * - BlueZ (the simulator's own state) holds no link the library does not hold, and every link the
 *   library calls connected is up in BlueZ; after the app disconnects everything, BlueZ holds none;
 * - nothing leaks: the daemon's match rules and connections, the mirror's listeners, timers and
 *   intervals, abort listeners on the caller's signals, device locks and leases, the pool's child
 *   actors, process warnings (a throwing listener) and unhandled rejections.
 *
 * What is shared across cycles (a long-running app's process): the private dbus-daemon and one
 * BluezClient (its bus connection and mirror). Fresh per cycle: the simulator (a new bluetoothd
 * with a new world: the shared client sees org.bluez go and come back between cycles, with no
 * library user active) and the pool or connections. Leak counts are compared before and after each
 * cycle, so a leak is caught in the cycle that made it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { getEventListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import { openBluez } from '../../src/bluez/client.js';
import type { BluezClient } from '../../src/bluez/client-types.js';
import { BluezError, StalledError, isAbortError } from '../../src/bluez/errors.js';
import { busyDeviceLocks } from '../../src/actors/device-lock.js';
import { establishConnection, type ManagedConnection } from '../../src/connection/establish.js';
import { createAdapterPool, type AdapterPool } from '../../src/pool/create-adapter-pool.js';
import type { NotifySubscription } from '../../src/bluez/client-types.js';
import { topLevelState } from '../../src/machines/state-trail.js';
import { startPrivateBus, type PrivateBus } from '../../src/testing/private-bus.js';
import { BluezSimulator } from '../../src/testing/simulator/simulator.js';
import type { DeviceSpec, FaultHandle, Scenario } from '../../src/testing/index.js';
import { daemonStats } from '../bluez/helpers.js';
import {
  FAULT_WINDOW_MS,
  adapterName,
  deviceAddress,
  deviceFaultSpec,
  hostFaultSpec,
  type SoakScenario,
} from './scenario.js';

export const BATTERY_SERVICE = '0000180f-0000-1000-8000-00805f9b34fb';
export const BATTERY_LEVEL = '00002a19-0000-1000-8000-00805f9b34fb';

// The harness's own waits use the real timer functions, so they never count as the library's.
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;
const realSetInterval = globalThis.setInterval;
const realClearInterval = globalThis.clearInterval;
const sleep = (ms: number): Promise<void> => new Promise((r) => realSetTimeout(r, ms));

/**
 * A lane: one world (private bus, BluezClient) running its cycles one after the other. Several lanes
 * may run in one process (`npm run soak -- --lanes K`); each runs its work inside its own async
 * context, so a timer, warning or rejection is charged to the lane (and its cycle) that made it.
 */
interface Lane {
  readonly lane: number;
  cycle: number;
  phase: string;
  readonly warnings: string[];
  readonly unhandled: string[];
}
const laneContext = new AsyncLocalStorage<Lane>();
const activeLanes = new Set<Lane>();

/** Timers and intervals created while a cycle runs and still pending after it, with the creating stack. */
class TimerBook {
  private readonly live = new Map<
    unknown,
    { ms: number; where: Error; lane: Lane | undefined; cycle: number }
  >();
  /** Timers created outside every lane's context while more than one lane ran (charged to none). */
  unattributed = 0;
  install(): void {
    const book = this.live;
    const owner = (): { lane: Lane | undefined; cycle: number } => {
      const lane = laneContext.getStore() ?? (activeLanes.size === 1 ? [...activeLanes][0] : undefined);
      if (lane === undefined) this.unattributed += 1;
      return { lane, cycle: lane?.cycle ?? 0 };
    };
    globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
      const handle = realSetTimeout(
        (...a: unknown[]) => {
          book.delete(handle);
          fn(...a);
        },
        ms,
        ...args,
      );
      book.set(handle, { ms: ms ?? 0, where: new Error('timer created here'), ...owner() });
      return handle;
    }) as typeof setTimeout;
    globalThis.setInterval = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
      const handle = realSetInterval(fn, ms, ...args);
      book.set(handle, { ms: ms ?? 0, where: new Error('interval created here'), ...owner() });
      return handle;
    }) as typeof setInterval;
    globalThis.clearTimeout = ((h: Parameters<typeof clearTimeout>[0]) => {
      book.delete(h);
      realClearTimeout(h);
    }) as typeof clearTimeout;
    globalThis.clearInterval = ((h: Parameters<typeof clearInterval>[0]) => {
      book.delete(h);
      realClearInterval(h);
    }) as typeof clearInterval;
  }
  uninstall(): void {
    globalThis.setTimeout = realSetTimeout;
    globalThis.clearTimeout = realClearTimeout;
    globalThis.setInterval = realSetInterval;
    globalThis.clearInterval = realClearInterval;
  }
  /** Pending timers made by `lane` during `cycle`, described by delay and stack. */
  pendingOf(lane: Lane, cycle: number): string[] {
    const out: string[] = [];
    for (const t of this.live.values()) {
      if (t.lane !== lane || t.cycle !== cycle) continue;
      const stack = (t.where.stack ?? '')
        .split('\n')
        .slice(2, 7)
        .map((l) => l.trim());
      out.push(`${t.ms} ms ${stack.join(' | ')}`);
    }
    return out;
  }
  forget(lane: Lane, cycle: number): void {
    for (const [h, t] of this.live) if (t.lane === lane && t.cycle === cycle) this.live.delete(h);
  }
}

// Installed while at least one world runs: one timer book and one pair of process hooks for all lanes.
let shared:
  | { timers: TimerBook; worlds: number; onWarning: (w: Error) => void; onUnhandled: (r: unknown) => void }
  | undefined;

function instrument(): TimerBook {
  if (shared === undefined) {
    const timers = new TimerBook();
    timers.install();
    // A warning or rejection outside every lane's context is charged to every lane running then.
    const owners = (): Lane[] => {
      const lane = laneContext.getStore();
      return lane === undefined ? [...activeLanes] : [lane];
    };
    const onWarning = (w: Error): void => {
      for (const lane of owners()) lane.warnings.push(`${w.name}: ${w.message}`);
    };
    const onUnhandled = (reason: unknown): void => {
      for (const lane of owners()) lane.unhandled.push(describeError(reason));
    };
    process.on('warning', onWarning);
    process.on('unhandledRejection', onUnhandled);
    shared = { timers, worlds: 0, onWarning, onUnhandled };
  }
  shared.worlds += 1;
  return shared.timers;
}

function uninstrument(): void {
  if (shared === undefined || --shared.worlds > 0) return;
  process.off('warning', shared.onWarning);
  process.off('unhandledRejection', shared.onUnhandled);
  shared.timers.uninstall();
  shared = undefined;
}

/** Timers created outside every lane while several lanes ran (0 with one lane: all are its own). */
export function unattributedTimers(): number {
  return shared?.timers.unattributed ?? 0;
}

/** What a cycle's leak checks compare: counts taken in the same phase before and after it. */
interface LeakCounts {
  matchRules: number;
  connections: number;
  mirrorListeners: number;
}

/** The shared part of the soak: the private bus, one BluezClient, the timer book, process hooks. */
export interface SoakWorld {
  /** The lane (0 unless several run in one process): its devices' addresses carry it. */
  readonly lane: number;
  bus: PrivateBus;
  bluez: BluezClient;
  /** Cycles run so far. */
  cycles: number;
  /** What the current cycle is doing (printed when a cycle hangs). */
  readonly phase: string;
  runCycle(scenario: SoakScenario): Promise<CycleResult>;
  stop(): Promise<void>;
}

export interface CycleResult {
  /** Invariants that did not hold (empty: the cycle passed). */
  violations: string[];
  /** Per device: connected, failed (error code), cancelled. */
  outcomes: string[];
  durationMs: number;
  /** Time spent starting the simulator, running the scenario, stopping it, and checking leaks. */
  phasesMs: number[];
}

/** Library options of every device: short deadlines and backoffs (latencies scaled by 0.01). */
const CONNECTION_OPTIONS = {
  maxAttempts: 3,
  attemptTimeoutMs: 400,
  closeInactiveConnections: true,
  backoffMs: {
    aborted: 10,
    inProgress: 10,
    noReply: 10,
    notFound: 30,
    other: 10,
    outOfSlots: 20,
    bluezGone: 40,
    validation: 10,
    phantom: 10,
    zombie: 10,
    notReady: 20,
    stalled: 10,
  },
} as const;
const DEVICE_DEFAULTS = {
  lateGattDelaysMs: [20, 60],
  disconnectTimeoutMs: 200,
  rediscoveryTimeoutMs: 300,
} as const;
const WATCHDOG = { timeoutMs: 150, action: 'reconnect' } as const;
const NOTIFY_EVERY_MS = 20;

function peripheral(s: SoakScenario, i: number, lane: number): DeviceSpec {
  const d = s.devices[i]!;
  const all = d.inRange.length === s.adapters;
  return {
    address: deviceAddress(i, lane),
    name: `soak-${i}`,
    addressType: 'random',
    rssi: -60 - i,
    inRange: all ? true : d.inRange.map(adapterName),
    knownOn: d.knownOn.map(adapterName),
    uuids: [BATTERY_SERVICE],
    services: [
      {
        uuid: BATTERY_SERVICE,
        characteristics: [
          { uuid: BATTERY_LEVEL, flags: ['read', 'notify'], value: [50], notifyIntervalMs: NOTIFY_EVERY_MS },
        ],
      },
    ],
  };
}

/** A library error: a class of this library with a stable string `code`. */
function isTyped(err: unknown): boolean {
  return (err instanceof BluezError || err instanceof StalledError) && typeof err.code === 'string';
}

function describeError(err: unknown): string {
  if (err instanceof Error)
    return `${err.constructor.name}(${(err as { code?: unknown }).code ?? '-'}): ${err.message}`;
  return `non-Error ${JSON.stringify(err)}`;
}

/** Polls `check` until it returns undefined (holds) or `ms` pass; returns the last complaint. */
async function until(check: () => string | undefined, ms: number): Promise<string | undefined> {
  const end = performance.now() + ms;
  for (;;) {
    const complaint = check();
    if (complaint === undefined || performance.now() > end) return complaint;
    await sleep(5);
  }
}

/**
 * Each device's outcome: connected, cancelled by its own signal, or failed with a typed error;
 * anything else (an untyped rejection) is a violation naming the call that produced it.
 */
function recordOutcomes(
  settled: ReadonlyArray<{ ok: true } | { ok: false; error: unknown }>,
  aborters: readonly AbortController[],
  call: string,
  lane: number,
  outcomes: string[],
  violations: string[],
): void {
  settled.forEach((r, i) => {
    const address = deviceAddress(i, lane);
    const cancelled = aborters[i]!.signal.aborted;
    if (r.ok) outcomes.push(`${address} connected`);
    else if (cancelled && (r.error === aborters[i]!.signal.reason || isAbortError(r.error)))
      outcomes.push(`${address} cancelled`);
    else if (isTyped(r.error)) outcomes.push(`${address} failed ${(r.error as BluezError).code}`);
    else violations.push(`${address}: ${call} rejected with an untyped error: ${describeError(r.error)}`);
  });
}

/** Bounds a teardown step: a step that hangs is a violation, not a hung soak. */
async function bounded<T>(
  what: string,
  p: Promise<T>,
  ms: number,
  violations: string[],
): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<'timeout'>((r) => {
    timer = realSetTimeout(() => r('timeout'), ms);
  });
  try {
    const r = await Promise.race([p, timeout]);
    if (r === 'timeout') {
      violations.push(`${what} did not finish within ${ms} ms`);
      return undefined;
    }
    return r as T;
  } catch (err) {
    violations.push(`${what} threw ${describeError(err)}`);
    return undefined;
  } finally {
    realClearTimeout(timer);
  }
}

/** The app's notification subscription, renewed after every connect (the watchdog needs traffic). */
class Subscriptions {
  private readonly subs = new Map<string, Promise<NotifySubscription | undefined>>();
  private closed = false;
  constructor(private readonly bluez: BluezClient) {}
  renew(address: string, adapter: string): void {
    // A reconnect that completes while the app shuts down subscribes no more.
    if (this.closed) return;
    const old = this.subs.get(address);
    const next = (async () => {
      const prev = await old;
      await prev?.stop({ timeoutMs: 200 }).catch(() => {});
      const chr = this.bluez
        .gattServices(adapter, address)
        .flatMap((s) => s.characteristics)
        .find((c) => c.uuid === BATTERY_LEVEL);
      if (chr === undefined) return undefined;
      return this.bluez.startNotify(chr.path, () => {}, { timeoutMs: 300 }).catch(() => undefined);
    })();
    this.subs.set(address, next);
  }
  async stopAll(): Promise<void> {
    this.closed = true;
    const all = [...this.subs.values()];
    this.subs.clear();
    for (const s of all) await (await s)?.stop({ timeoutMs: 200 }).catch(() => {});
  }
}

/**
 * Starts the shared world of one lane: a private bus and one BluezClient on it. Lanes started in
 * one process (`lane` 0, 1, …) share nothing but the process: each has its own dbus-daemon, client
 * and device addresses, and its cycles' timers, warnings and rejections are charged to it alone.
 */
export async function startSoakWorld(options: { lane?: number } = {}): Promise<SoakWorld> {
  const laneNo = options.lane ?? 0;
  if (!Number.isInteger(laneNo) || laneNo < 0 || laneNo > 255)
    throw new RangeError('lane must be an integer from 0 to 255');
  const lane: Lane = { lane: laneNo, cycle: 0, phase: 'idle', warnings: [], unhandled: [] };
  if ([...activeLanes].some((l) => l.lane === laneNo)) throw new RangeError(`lane ${laneNo} already runs`);
  return laneContext.run(lane, async () => {
    const bus = await startPrivateBus();
    let bluez: BluezClient;
    try {
      bluez = await openBluez({ busAddress: bus.address, dbusCallTimeoutMs: 2000, disconnectTimeoutMs: 300 });
    } catch (err) {
      await bus.stop();
      throw err;
    }
    const timers = instrument();
    activeLanes.add(lane);
    const counts = async (): Promise<LeakCounts> => {
      const stats = await daemonStats(bus.address);
      return {
        matchRules: stats.rulesByConnection.get(bluez.uniqueName ?? '')?.length ?? 0,
        connections: stats.activeConnections,
        mirrorListeners: bluez.mirror.totalListenerCount(),
      };
    };
    let before = await counts();
    const addressPrefix = deviceAddress(0, laneNo).slice(0, -2);

    const world: SoakWorld = {
      lane: laneNo,
      bus,
      bluez,
      cycles: 0,
      get phase() {
        return lane.phase;
      },
      runCycle: (scenario) =>
        laneContext.run(lane, async () => {
          const t0 = performance.now();
          world.cycles += 1;
          lane.cycle = world.cycles;
          lane.warnings.length = 0;
          lane.unhandled.length = 0;
          const violations: string[] = [];
          const outcomes: string[] = [];
          const marks: number[] = [performance.now()];
          lane.phase = 'starting the simulator';
          const sim = await BluezSimulator.start({
            busAddress: bus.address,
            latencyScale: 0.01,
            scenario: simScenario(scenario, laneNo),
          });
          try {
            await bounded(
              'the client seeing the new bluetoothd',
              bluez.waitForBluez({ timeoutMs: 3000 }),
              4000,
              violations,
            );
            await until(() => (bluez.adapters().length === scenario.adapters ? undefined : 'adapters'), 2000);
            marks.push(performance.now());
            if (violations.length === 0) {
              if (scenario.api === 'pool') await poolCycle(bluez, sim, scenario, lane, violations, outcomes);
              else await establishCycle(bluez, sim, scenario, lane, violations, outcomes);
            }
          } finally {
            marks.push(performance.now());
            lane.phase = 'stopping the simulator';
            await sim.stop();
          }
          // bluetoothd gone: the shared client is back where it was before the cycle.
          await until(() => (bluez.mirror.bluezReady ? 'bluez still up' : undefined), 2000);
          await sleep(0);
          marks.push(performance.now());
          lane.phase = 'leak checks';
          const pending = timers.pendingOf(lane, world.cycles);
          if (pending.length > 0) {
            // A timer that fires soon after may be a short library deadline finishing on its own; give
            // it up to 50 ms, then whatever is still pending is a leak.
            await until(() => (timers.pendingOf(lane, world.cycles).length > 0 ? 'pending' : undefined), 50);
            const still = timers.pendingOf(lane, world.cycles);
            if (still.length > 0)
              violations.push(`timers left pending after the cycle: ${still.join(' ;; ')}`);
            timers.forget(lane, world.cycles);
          }
          // Device locks are per process: this lane's are those of its own addresses.
          const busy = busyDeviceLocks().filter((a) => a.startsWith(addressPrefix));
          if (busy.length > 0) violations.push(`device locks still held: ${busy.join(', ')}`);
          lane.phase = 'daemon stats';
          const after = await counts();
          for (const k of Object.keys(after) as (keyof LeakCounts)[]) {
            if (after[k] !== before[k])
              violations.push(`${k}: ${before[k]} before the cycle, ${after[k]} after`);
          }
          before = after;
          if (lane.warnings.length > 0) violations.push(`process warnings: ${lane.warnings.join(' ;; ')}`);
          if (lane.unhandled.length > 0)
            violations.push(`unhandled rejections: ${lane.unhandled.join(' ;; ')}`);
          marks.push(performance.now());
          const phases = marks.slice(1).map((m, i) => Math.round(m - marks[i]!));
          return { violations, outcomes, durationMs: performance.now() - t0, phasesMs: phases };
        }),
      async stop() {
        activeLanes.delete(lane);
        uninstrument();
        await bluez.close();
        await bus.stop();
      },
    };
    return world;
  });
}

function simScenario(s: SoakScenario, lane: number): Scenario {
  return {
    adapters: [...Array(s.adapters).keys()].map((i) => ({ name: adapterName(i) })),
    devices: s.devices.map((_, i) => peripheral(s, i, lane)),
  };
}

/** Injects every fault at its moment; returns a function that clears what is still active. */
function scheduleFaults(sim: BluezSimulator, s: SoakScenario, lane: number): { clearAll(): void } {
  const handles: FaultHandle[] = [];
  const timers: ReturnType<typeof setTimeout>[] = [];
  const inject = (spec: Parameters<BluezSimulator['inject']>[0]): void => {
    try {
      handles.push(sim.inject(spec));
    } catch {
      // An adapter that is unplugged right now cannot take an adapter fault; nothing to do.
    }
  };
  const at = (ms: number, fn: () => void): void => {
    if (ms === 0) fn();
    else timers.push(realSetTimeout(fn, ms));
  };
  s.devices.forEach((d, i) => {
    for (const a of d.phantomOn)
      inject({ kind: 'phantom', target: { device: deviceAddress(i, lane), adapter: adapterName(a) } });
    for (const f of d.faults) {
      const spec = deviceFaultSpec(
        deviceAddress(i, lane),
        f.adapter === null ? null : adapterName(f.adapter),
        f.fault,
      );
      at(f.atMs, () => inject(spec));
    }
  });
  for (const f of s.hostFaults) at(f.atMs, () => inject(hostFaultSpec(f.fault)));
  return {
    clearAll() {
      for (const t of timers) realClearTimeout(t);
      for (const h of handles) h.clear();
    },
  };
}

/** The links BlueZ holds, as `hciN/ADDRESS`, with whether each is a phantom (no services). */
function simLinks(sim: BluezSimulator): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const a of sim.state().adapters)
    for (const d of a.devices) if (d.connected) out.set(`${a.name}/${d.address}`, d.phantom);
  return out;
}

/**
 * Links in BlueZ the library does not hold. A phantom (the `phantom` fault before the app starts:
 * Connected without services, another process's stale link) that the library does not hold is left
 * alone by design (it clears a phantom only on the adapter it connects the device on, with
 * closeInactiveConnections: a phantom on another adapter, or of a device cancelled before it got
 * there, may be another process's link), so it is not counted; every other link must be the library's.
 */
function unknownLinks(sim: BluezSimulator, held: Set<string>): string[] {
  return [...simLinks(sim)]
    .filter(([link, phantom]) => !held.has(link) && !phantom)
    .map(([link, phantom]) => (phantom ? `${link} (phantom)` : link));
}

/** Compares the library's links with BlueZ's; undefined when they agree. */
function linksAgree(sim: BluezSimulator, held: Map<string, string | null>): string | undefined {
  const lib = new Set<string>();
  for (const [address, adapter] of held) if (adapter !== null) lib.add(`${adapter}/${address}`);
  const bluezLinks = simLinks(sim);
  const unknown = unknownLinks(sim, lib);
  const missing = [...lib].filter((l) => bluezLinks.get(l) !== false);
  if (unknown.length === 0 && missing.length === 0) return undefined;
  return `BlueZ holds links the library does not: ${JSON.stringify(unknown)}; the library holds links BlueZ does not (or only as phantoms): ${JSON.stringify(missing)}`;
}

async function poolCycle(
  bluez: BluezClient,
  sim: BluezSimulator,
  s: SoakScenario,
  lane: Lane,
  violations: string[],
  outcomes: string[],
): Promise<void> {
  const pool: AdapterPool = createAdapterPool({
    bluez,
    slotsPerAdapter: s.devices.length,
    limitReprobeMs: 300,
    defaults: { ...CONNECTION_OPTIONS, ...DEVICE_DEFAULTS },
  });
  const subs = new Subscriptions(bluez);
  const watched = new Set(s.devices.flatMap((d, i) => (d.watchdog ? [deviceAddress(i, lane.lane)] : [])));
  const failures = new Map<string, unknown>();
  const offs = [
    pool.actor.on('device-connected', (e) => {
      if (watched.has(e.address)) subs.renew(e.address, e.adapter);
    }),
    pool.actor.on('device-failed', (e) => failures.set(e.address, e.cause)),
  ];
  const aborters: AbortController[] = [];
  // Links the library held once the faults were over (`hciN/ADDRESS`): none may stay behind.
  const heldAtSettle = new Set<string>();
  const abortTimers: ReturnType<typeof setTimeout>[] = [];
  const faults = scheduleFaults(sim, s, lane.lane);
  const results = s.devices.map((d, i) => {
    const address = deviceAddress(i, lane.lane);
    const ac = new AbortController();
    aborters.push(ac);
    if (d.abortAtMs !== null) abortTimers.push(realSetTimeout(() => ac.abort(), d.abortAtMs));
    return pool
      .connected(address, d.watchdog ? { signal: ac.signal, watchdog: WATCHDOG } : { signal: ac.signal })
      .then(
        () => ({ ok: true as const }),
        (error: unknown) => ({ ok: false as const, error }),
      );
  });
  try {
    await sleep(FAULT_WINDOW_MS);
    faults.clearAll();
    lane.phase = 'pool: waiting for connected()';
    const settled = await bounded(
      'the pool settling every connected() call',
      Promise.all(results),
      20_000,
      violations,
    );
    if (settled === undefined) return;
    recordOutcomes(settled, aborters, 'connected()', lane.lane, outcomes, violations);
    // With keep-alive a connected device may be reconnecting: wait until every device the pool holds
    // is connected or failed, and BlueZ's links are exactly the pool's.
    lane.phase = 'pool: settling';
    const complaint = await until(() => {
      const devices = pool.snapshot().devices;
      const busy = devices.filter((d) => d.status !== 'connected' && d.status !== 'failed');
      if (busy.length > 0) return `devices not settled: ${JSON.stringify(busy)}`;
      const held = new Map(devices.map((d) => [d.address, d.status === 'connected' ? d.adapter : null]));
      return linksAgree(sim, held);
    }, 20_000);
    if (complaint !== undefined) violations.push(`after the faults: ${complaint}`);
    for (const d of pool.snapshot().devices)
      if (d.status === 'connected') heldAtSettle.add(`${d.adapter}/${d.address}`);
    for (const d of pool.snapshot().devices) {
      if (d.status !== 'failed') continue;
      const cause = failures.get(d.address);
      if (!isTyped(cause) && !isAbortError(cause))
        violations.push(`${d.address}: failed in the pool with an untyped cause: ${describeError(cause)}`);
    }
  } finally {
    for (const t of abortTimers) realClearTimeout(t);
    faults.clearAll();
    // The app shuts down: every device disconnected (verified), then the pool closed.
    lane.phase = 'pool: stopping subscriptions';
    await subs.stopAll();
    lane.phase = 'pool: disconnecting';
    await Promise.all(
      pool
        .snapshot()
        .devices.map((d) =>
          bounded(`pool.disconnect(${d.address})`, pool.disconnect(d.address), 10_000, violations),
        ),
    );
    // Connection actors (`device:…`) end with their device; the adapter actors (`adapter:…`) live
    // as long as the pool and are checked after close().
    const children = Object.keys(pool.actor.getSnapshot().children).filter(
      (id) => !id.startsWith('adapter:'),
    );
    if (children.length > 0)
      violations.push(`pool children left after every disconnect: ${children.join(', ')}`);
    if (pool.heldLocks !== 0)
      violations.push(
        `pool leases held after every disconnect: ${pool.heldLocks} (device locks busy in the process: ${busyDeviceLocks().join(', ') || 'none'})`,
      );
    for (const off of offs) off.unsubscribe();
    lane.phase = 'pool: close';
    await bounded('pool.close()', pool.close(), 10_000, violations);
    if (pool.actor.getSnapshot().status !== 'stopped')
      violations.push(`the pool actor is ${pool.actor.getSnapshot().status} after close()`);
    const left = [...simLinks(sim)]
      .filter(([link, phantom]) => !phantom || heldAtSettle.has(link))
      .map(([link]) => link);
    if (left.length > 0)
      violations.push(`links left in BlueZ after disconnecting everything: ${left.join(', ')}`);
    aborters.forEach((ac, i) => {
      const n = getEventListeners(ac.signal, 'abort').length;
      if (n > 0)
        violations.push(`${deviceAddress(i, lane.lane)}: ${n} abort listener(s) left on the caller's signal`);
    });
  }
}

async function establishCycle(
  bluez: BluezClient,
  sim: BluezSimulator,
  s: SoakScenario,
  lane: Lane,
  violations: string[],
  outcomes: string[],
): Promise<void> {
  const subs = new Subscriptions(bluez);
  const aborters: AbortController[] = [];
  // Links the library held once the faults were over (`hciN/ADDRESS`): none may stay behind.
  const heldAtSettle = new Set<string>();
  const abortTimers: ReturnType<typeof setTimeout>[] = [];
  const faults = scheduleFaults(sim, s, lane.lane);
  const connections: Array<ManagedConnection | null> = s.devices.map(() => null);
  const actorSubs: Array<{ unsubscribe(): void }> = [];
  const results = s.devices.map((d, i) => {
    const address = deviceAddress(i, lane.lane);
    const ac = new AbortController();
    aborters.push(ac);
    if (d.abortAtMs !== null) abortTimers.push(realSetTimeout(() => ac.abort(), d.abortAtMs));
    return establishConnection({
      bluez,
      address,
      keepAlive: true,
      signal: ac.signal,
      ...CONNECTION_OPTIONS,
      ...DEVICE_DEFAULTS,
      ...(d.watchdog ? { watchdog: WATCHDOG } : {}),
    }).then(
      (c) => {
        connections[i] = c;
        if (d.watchdog) {
          // The app subscribes after every (re)connect.
          let last = '';
          actorSubs.push(
            c.actor.subscribe((snap) => {
              const state = topLevelState(snap.value);
              if (state === 'connected' && last !== 'connected') subs.renew(address, snap.context.adapter);
              last = state;
            }),
          );
          subs.renew(address, c.adapter);
        }
        return { ok: true as const };
      },
      (error: unknown) => ({ ok: false as const, error }),
    );
  });
  try {
    await sleep(FAULT_WINDOW_MS);
    faults.clearAll();
    lane.phase = 'establish: waiting for establishConnection';
    const settled = await bounded(
      'every establishConnection call settling',
      Promise.all(results),
      20_000,
      violations,
    );
    if (settled === undefined) return;
    recordOutcomes(settled, aborters, 'establishConnection', lane.lane, outcomes, violations);
    lane.phase = 'establish: settling';
    const complaint = await until(() => {
      const held = new Map<string, string | null>();
      for (const c of connections) {
        if (c === null) continue;
        const snap = c.actor.getSnapshot();
        if (snap.status === 'active') {
          const state = topLevelState(snap.value);
          if (state !== 'connected') return `${c.address} still ${state}`;
          held.set(c.address, snap.context.adapter);
        }
      }
      return linksAgree(sim, held);
    }, 20_000);
    if (complaint !== undefined) violations.push(`after the faults: ${complaint}`);
    for (const c of connections)
      if (c !== null && c.actor.getSnapshot().status === 'active')
        heldAtSettle.add(`${c.adapter}/${c.address}`);
    lane.phase = 'establish: closed';
    for (const c of connections) {
      if (c === null || c.actor.getSnapshot().status === 'active') continue;
      const end = await c.closed;
      const cancelled = aborters[connections.indexOf(c)]!.signal.aborted;
      if (end.reason === 'gave-up' && !isTyped(end.error) && !(cancelled && isAbortError(end.error)))
        violations.push(
          `${c.address}: keep-alive gave up with an untyped error: ${describeError(end.error)}`,
        );
    }
  } finally {
    for (const t of abortTimers) realClearTimeout(t);
    faults.clearAll();
    for (const sub of actorSubs) sub.unsubscribe();
    lane.phase = 'establish: stopping subscriptions';
    await subs.stopAll();
    lane.phase = 'establish: disconnecting';
    await Promise.all(
      connections.map(async (c) => {
        if (c === null) return;
        await bounded(`disconnect() of ${c.address}`, c.disconnect(), 10_000, violations);
        // Stopped by disconnect(), or done earlier when keep-alive gave up.
        if (c.actor.getSnapshot().status === 'active')
          violations.push(`${c.address}: actor ${c.actor.getSnapshot().status} after disconnect()`);
      }),
    );
    const left = [...simLinks(sim)]
      .filter(([link, phantom]) => !phantom || heldAtSettle.has(link))
      .map(([link]) => link);
    if (left.length > 0)
      violations.push(`links left in BlueZ after disconnecting everything: ${left.join(', ')}`);
    aborters.forEach((ac, i) => {
      const n = getEventListeners(ac.signal, 'abort').length;
      if (n > 0)
        violations.push(`${deviceAddress(i, lane.lane)}: ${n} abort listener(s) left on the caller's signal`);
    });
  }
}
