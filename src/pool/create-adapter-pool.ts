/**
 * `createAdapterPool`: the adapter pool machine (src/machines/adapter-pool.ts) running over a
 * BluezClient, with the real connection actors as its children and the reset ladder as their
 * `resetAdapter` actor. This file is the glue: it feeds the mirror to the pool and offers
 * connect/disconnect/snapshot (the children report to the pool themselves).
 */
import { createActor, type Actor, type SnapshotFrom } from 'xstate';
import type { BluezClient } from '../bluez/client-types.js';
import { BluezError, isAbortError } from '../bluez/errors.js';
import { validateAdapterName, validateMac, validateSignal, validateTimeoutMs } from '../bluez/validate.js';
import { connectionActorImplementations } from '../actors/connection-actors.js';
import { StallGuard } from '../stall-guard/stall-guard.js';
import { LeaseBook } from '../actors/lease-book.js';
import { ResetLadder, resetLadderActor, type ResetLadderOptions } from '../actors/reset-ladder.js';
import { ladderBluezPort } from '../actors/reset-ladder-ports.js';
import { guardLogger } from '../connection/logger.js';
import {
  resolveOptions,
  validateInspect,
  type Inspect,
  type ConnectionLogger,
  type ConnectionOptions,
} from '../connection/options.js';
import type { Validator } from '../connection/validators.js';
import { connectionMachine } from '../machines/connection.js';
import { adapterPoolMachine, type PooledConnectionActor } from '../machines/adapter-pool.js';
import {
  effectiveLimit,
  freeSlots,
  usableAdapters,
  type AdapterStrategy,
  type PoolDeviceStatus,
} from '../machines/adapter-pool-logic.js';
import { slotReport, type PoolEmitted } from '../machines/adapter-pool-steps.js';
import type { ResolvedSlotLock } from '../lock/config.js';
import { lockHolders } from '../lock/holders.js';
import { startMirrorSync } from './mirror-sync.js';
import { indexScheduledEvents } from './scheduler-index.js';
import { connectAdmission, validateConnectsPerAdapter } from '../actors/connect-admission.js';

/** Per-device options of {@link AdapterPool.connect} (the pool chooses the adapters). */
export type PoolConnectOptions = Omit<
  ConnectionOptions,
  | 'address'
  | 'adapters'
  | 'signal'
  | 'overallTimeoutMs'
  | 'logger'
  | 'inspect'
  | 'lateGattDelaysMs'
  | 'disconnectTimeoutMs'
  | 'rediscoveryTimeoutMs'
  | 'slotsPerAdapter'
  | 'stallGuardMs'
  | 'lock'
  | 'discovery'
> & {
  /** Reconnect after a link loss (default true). */
  keepAlive?: boolean;
};

/** Options of {@link createAdapterPool}. */
export interface AdapterPoolOptions {
  /** The BlueZ client (the caller owns it and closes it after the pool). */
  bluez: BluezClient;
  /** Links per adapter (default 5, docs/defaults.md; CSR 5, Broadcom/RPi 7, some Realtek 2–3). */
  slotsPerAdapter?: number;
  /** `round-robin` (default) or `score` (free slots, recent failures, RSSI on that adapter). */
  strategy?: AdapterStrategy;
  /** Defaults of every device's connection (overridable per `connect`). */
  defaults?: PoolConnectOptions &
    Pick<
      ConnectionOptions,
      // stallGuardMs: one stall guard (worker thread) for the whole pool.
      'lateGattDelaysMs' | 'disconnectTimeoutMs' | 'rediscoveryTimeoutMs' | 'stallGuardMs'
    >;
  /**
   * The recovery ladder run by a child's `resetting` state (docs/architecture.md). Without it, `reset`
   * escalation power-cycles the adapter through D-Bus only.
   */
  resetLadder?: Omit<ResetLadderOptions, 'bluez'>;
  logger?: ConnectionLogger;
  /** XState inspection of the pool and its children: a callback or `@statelyai/inspect`'s `inspector.inspect`. */
  inspect?: Inspect;
  /**
   * How long a slot limit learned from refused links holds before the configured limit is tried
   * again (default 600 000). A learned limit is also dropped as soon as BlueZ shows more links on
   * that adapter than it.
   */
  limitReprobeMs?: number;
  /**
   * Adapters the pool may use (allow-list, e.g. `['hci1', 'hci2']`); default: every adapter BlueZ
   * has, present and future. Use it when an adapter belongs to another service.
   */
  adapters?: readonly string[];
  /** Adapters the pool must never use (applied after `adapters`). */
  excludeAdapters?: readonly string[];
  /**
   * Cross-process connection slots for every child (off by default; see the connection option
   * `lock`): a child waits in `locking` for one of the adapter's slot files — shared with other
   * services, Python ones included — instead of calling Connect while `maxSlots` attempts of any
   * process are under way on that adapter.
   */
  lock?: ConnectionOptions['lock'];
  /** Managed discovery for every child (scan lock, listen-only; see the connection option). */
  discovery?: ConnectionOptions['discovery'];
  /**
   * Device1.Connect calls pending at once per adapter (default 2; src/actors/connect-admission.ts
   * says why): children wait for their turn first come first served. The bound belongs to the
   * BluezClient and is shared with everything connecting through it (other pools,
   * establishConnection); setting it here sets it for that client.
   */
  connectsPerAdapter?: number;
}

/** Per-adapter view in a {@link PoolSnapshot}. */
export interface PoolAdapterSnapshot {
  readonly name: string;
  readonly present: boolean;
  readonly powered: boolean;
  /** The limit in force (configured, or lower when learned from a refused link). */
  readonly limit: number;
  readonly learnedLimit: number | null;
  /** Devices holding a slot here. */
  readonly inUse: readonly string[];
  readonly recentFailures: number;
  /** Connect attempts other processes have under way here (their slot locks; 0 when locks are off). */
  readonly foreignAttempts: number;
}

/** A plain view of the pool. */
export interface PoolSnapshot {
  readonly bluezUp: boolean;
  readonly adapters: readonly PoolAdapterSnapshot[];
  /** Devices waiting for a slot, in queue order. */
  readonly queued: readonly string[];
  readonly devices: ReadonlyArray<{
    address: string;
    status: PoolDeviceStatus;
    adapter: string | null;
    error: string | null;
  }>;
}

/** A pooled connection once connected. */
export interface PooledConnection {
  readonly address: string;
  readonly adapter: string;
  /** The device's connection actor. */
  readonly child: PooledConnectionActor;
}

/** The running pool. */
export interface AdapterPool {
  /** The pool actor (snapshots, `on('device-connected', …)`, inspection). */
  readonly actor: Actor<typeof adapterPoolMachine>;
  /**
   * Starts managing a device and returns its connection actor (idle while queued). The device keeps
   * this actor while it is in the pool: when no adapter has a free slot for it, the actor waits in
   * `waiting-for-slot`. Only a device connected again after it failed gets a new actor.
   */
  connect(address: string, options?: PoolConnectOptions): PooledConnectionActor;
  /** `connect`, then resolves once it is connected; rejects with the child's error, or on `signal`. */
  connected(
    address: string,
    options?: PoolConnectOptions & { signal?: AbortSignal },
  ): Promise<PooledConnection>;
  /** Verified disconnect; resolves when the device has left the pool. */
  disconnect(address: string): Promise<void>;
  /** The current connection actor of a device. */
  child(address: string): PooledConnectionActor | undefined;
  snapshot(): PoolSnapshot;
  /** Stops every child (no disconnect), releases every lock and listener. Idempotent. */
  close(): Promise<void>;
  /** Locks held by children right now (tests check that nothing leaks). */
  readonly heldLocks: number;
}

/**
 * Queued devices the pool starts per turn (PoolInput.startsPerTurn). Starting one runs its
 * connection actor's first steps (lock, admission, the Connect call, and what their promises
 * resolve) in the same macrotask, so a thousand `connect()` calls in one go would otherwise start a
 * thousand actors in one macrotask and hold the event loop for the whole batch. One per turn (a
 * turn ends at the next timer phase) is still far more starts per second than the adapters
 * complete Connect calls (connectsPerAdapter at once each). Measured with `npm run bench:scale`
 * (load average 6-8): event-loop delay p50 16 ms with 1 per turn against 30-45 ms with 4, and
 * 1000 devices connected in 7.5 s against 5.1-5.3 s, well inside the 12x-of-N=100 goal.
 */
const STARTS_PER_TURN = 1;

/** Devices `connected()` admits per macrotask (see `callTurn` in createAdapterPool). */
const CONNECTED_CALLS_PER_TURN = 8;

/** An adapter list option: an array of distinct adapter names, or undefined. */
function adapterList(value: unknown, field: string): readonly string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw new TypeError(`${field} must be an array of adapter names like ["hci0"]`);
  const names = value.map((a: unknown, i) => validateAdapterName(a, `${field}[${i}]`));
  if (new Set(names).size !== names.length) throw new RangeError(`${field} must not repeat an adapter`);
  return names;
}

function validatePoolOptions(options: AdapterPoolOptions): {
  slots: number;
  strategy: AdapterStrategy;
  limitReprobeMs: number | undefined;
  allowed: (adapter: string) => boolean;
  connectsPerAdapter: number | undefined;
} {
  if (typeof options !== 'object' || options === null)
    throw new TypeError('createAdapterPool options must be an object');
  const bluez = options.bluez as Partial<BluezClient> | undefined;
  if (typeof bluez !== 'object' || bluez === null || typeof bluez.connect !== 'function') {
    throw new TypeError('bluez must be a BluezClient from openBluez()');
  }
  const slots = options.slotsPerAdapter ?? 5;
  if (typeof slots !== 'number') throw new TypeError(`slotsPerAdapter must be a number, got ${typeof slots}`);
  if (!Number.isInteger(slots) || slots < 1)
    throw new RangeError(`slotsPerAdapter must be an integer >= 1, got ${slots}`);
  const strategy = options.strategy ?? 'round-robin';
  if (strategy !== 'round-robin' && strategy !== 'score') {
    throw new TypeError(`strategy must be "round-robin" or "score", got ${JSON.stringify(strategy)}`);
  }
  const reprobe =
    options.limitReprobeMs === undefined
      ? undefined
      : validateTimeoutMs(options.limitReprobeMs, 'limitReprobeMs');
  if (reprobe !== undefined && reprobe < 1)
    throw new RangeError(`limitReprobeMs must be a finite number >= 1, got ${String(reprobe)}`);
  const include = adapterList(options.adapters, 'adapters');
  const exclude = adapterList(options.excludeAdapters, 'excludeAdapters');
  if (include !== undefined && include.length === 0)
    throw new RangeError('adapters must name at least one adapter (omit it to use every adapter)');
  if (include !== undefined && exclude !== undefined && include.every((a) => exclude.includes(a)))
    throw new RangeError('excludeAdapters removes every adapter of adapters');
  const connectsPerAdapter =
    options.connectsPerAdapter === undefined
      ? undefined
      : validateConnectsPerAdapter(options.connectsPerAdapter, 'connectsPerAdapter');
  const allowed = (adapter: string): boolean =>
    (include === undefined || include.includes(adapter)) && !(exclude ?? []).includes(adapter);
  return { slots, strategy, limitReprobeMs: reprobe, allowed, connectsPerAdapter };
}

/**
 * Polls the slot lock files of the adapters (read-only, /proc/locks) and reports, per adapter, how
 * many are held by other processes: their connect attempts take controller slots the pool must not
 * hand out. Returns the stop function.
 */
function watchForeignAttempts(
  lock: ResolvedSlotLock,
  adapters: () => readonly string[],
  report: (adapter: string, count: number) => void,
): () => void {
  const last = new Map<string, number>();
  let busy = false;
  const poll = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      const files = await lockHolders({ dir: lock.dir, slotTemplate: lock.template });
      for (const adapter of adapters()) {
        const count = files.filter(
          (f) =>
            f.kind === 'slot' &&
            f.adapter === adapter &&
            f.slot !== null &&
            f.slot < lock.maxSlots &&
            f.holders.some((pid) => pid !== process.pid),
        ).length;
        if ((last.get(adapter) ?? 0) !== count) {
          last.set(adapter, count);
          report(adapter, count);
        }
      }
    } finally {
      busy = false;
    }
  };
  void poll().catch(() => {});
  const timer = setInterval(() => void poll().catch(() => {}), Math.max(50, lock.retryIntervalMs));
  timer.unref();
  return () => clearInterval(timer);
}

/** One of the pool's children: connection actors (`device:…`) and adapter actors (`adapter:…`). */
type PoolChild = NonNullable<SnapshotFrom<typeof adapterPoolMachine>['children'][string]>;

function isConnectionActor(child: PoolChild): child is PoolChild & PooledConnectionActor {
  return child.src === 'connection';
}

/**
 * Creates and starts the adapter pool (docs/architecture.md) over `options.bluez`.
 * Throws TypeError/RangeError naming the field for bad options, before any I/O.
 */
export function createAdapterPool(options: AdapterPoolOptions): AdapterPool {
  const { slots, strategy, limitReprobeMs, allowed, connectsPerAdapter } = validatePoolOptions(options);
  const { bluez } = options;
  // The adapters the pool may use, as BlueZ shows them now.
  const poolAdapters = () => bluez.adapters().filter((a) => allowed(a.name));
  const logger = guardLogger(options.logger);
  const poolDefaults = resolveOptions({
    address: '00:00:00:00:00:00',
    ...options.defaults,
    lock: options.lock,
    discovery: options.discovery,
    logger: options.logger,
  });
  const ladder =
    options.resetLadder === undefined
      ? undefined
      : new ResetLadder({
          ...options.resetLadder,
          bluez: ladderBluezPort(bluez),
          log:
            options.resetLadder.log ??
            ((e) => logger[e.level]?.({ adapter: e.adapter, step: e.step, drops: e.drops }, e.message)),
        });

  const validators = new Map<string, Validator | undefined>();
  const leases = new LeaseBook();
  // The pool actor, once created (the children's slot limit below is built before it).
  const ref: { pool?: Actor<typeof adapterPoolMachine> } = {};
  let closed = false;

  // One stall guard for every child of the pool (defaults.stallGuardMs), only when enabled.
  const stallGuard =
    poolDefaults.stallGuardMs === null
      ? undefined
      : StallGuard.start({
          busAddress: bluez.busAddress,
          stallGuardMs: poolDefaults.stallGuardMs,
          disconnectTimeoutMs: poolDefaults.disconnectTimeoutMs,
          onError: (error) => logger.error?.({}, `the stall guard's worker failed: ${error.message}`),
          onStall: (stall) =>
            logger.warn?.(
              { address: stall.address, adapter: stall.adapter, stalledMs: stall.stalledMs },
              `event loop blocked for ${stall.stalledMs} ms while connecting on ${stall.adapter}: the stall guard sent Disconnect (${stall.disconnect})`,
            ),
        });
  const implementations = connectionActorImplementations({
    bluez,
    stallGuard,
    validate: (context) => {
      const own = validators.get(context.address);
      return own === undefined ? true : own(context);
    },
    lateGattDelaysMs: poolDefaults.lateGattDelaysMs,
    disconnectTimeoutMs: poolDefaults.disconnectTimeoutMs,
    rediscoveryTimeoutMs: poolDefaults.rediscoveryTimeoutMs,
    leases,
    policy: poolDefaults.policy,
    // The limit in force, learned limits included: a refused link on an adapter at that limit is
    // out-of-slots, and the child asks the pool to rotate at once.
    slotLimit: (adapter) =>
      ref.pool === undefined ? slots : effectiveLimit(ref.pool.getSnapshot().context, adapter),
    // A device unknown on its adapter (e.g. after a bluetoothd restart) is looked for at the same
    // time on every adapter that could take it now (usable, a free slot for it).
    searchAdapters: (address) => {
      if (ref.pool === undefined) return [];
      const view = ref.pool.getSnapshot().context;
      return usableAdapters(view).filter((a) => freeSlots(view, a, address) > 0);
    },
    slotLock: poolDefaults.lock,
    discovery: poolDefaults.discovery,
    admission: connectAdmission(bluez, connectsPerAdapter),
  });
  const childLogic = connectionMachine.provide({
    ...implementations,
    actors: {
      ...implementations.actors,
      ...(ladder === undefined ? {} : { resetAdapter: resetLadderActor(ladder) }),
    },
  });

  const actor = createActor(adapterPoolMachine.provide({ actors: { connection: childLogic } }), {
    input: {
      slotsPerAdapter: slots,
      strategy,
      adapters: poolAdapters().map((a) => ({ name: a.name, powered: a.powered })),
      bluezUp: bluez.mirror.bluezReady,
      limitReprobeMs,
      startsPerTurn: STARTS_PER_TURN,
    },
    inspect: validateInspect(options.inspect),
  });
  ref.pool = actor;
  // Stopping one device's actor (or one of its invoked actors) must not walk every device's timers.
  indexScheduledEvents(actor.system);

  // The final error of each device that gave up, for `connected()` to reject with.
  const endErrors = new Map<string, unknown>();
  const offFailed = actor.on('device-failed', (e) => endErrors.set(e.address, e.cause));

  // ---- mirror → pool (src/pool/mirror-sync.ts: only what changed) ------------------------------
  const mirrorSync = startMirrorSync({
    mirror: bluez.mirror,
    allowed,
    inPool: (address) => actor.getSnapshot().context.devices.get(address) !== undefined,
    poolDevices: () => actor.getSnapshot().context.devices.keys(),
    send: (event) => {
      if (!closed) actor.send(event);
    },
  });

  const offLog = [
    actor.on('device-rotated', (e) =>
      logger.info?.({ ...e }, `${e.address}: rotated from ${e.from} to ${e.to}`),
    ),
    actor.on('device-requeued', (e) =>
      logger.info?.({ ...e }, `${e.address}: waiting for a slot (${e.reason})`),
    ),
    actor.on('slot-limit-learned', (e) =>
      logger.warn?.(
        { ...e },
        `${e.adapter} refused a link at ${e.limit} links: using ${e.limit} as its slot limit`,
      ),
    ),
    actor.on('slot-limit-forgotten', (e) =>
      logger.info?.({ ...e }, `${e.adapter}: learned slot limit dropped (${e.reason})`),
    ),
    actor.on('device-failed', (e) => logger.warn?.({ ...e }, `${e.address}: gave up: ${e.error}`)),
  ];
  actor.start();
  // Links that exist already (another service's, or ours from before) occupy slots from the start.
  mirrorSync.syncAll();
  const stopWatchingSlots =
    poolDefaults.lock === undefined
      ? () => {}
      : watchForeignAttempts(
          poolDefaults.lock,
          () => [...mirrorSync.adapters.keys()],
          (name, count) => {
            if (!closed) actor.send({ type: 'ADAPTER_FOREIGN_ATTEMPTS', name, count });
          },
        );

  const childOf = (address: string): PooledConnectionActor | undefined => {
    const d = actor.getSnapshot().context.devices.get(address);
    if (d?.childId == null) return undefined;
    const child = actor.getSnapshot().children[d.childId];
    return child !== undefined && isConnectionActor(child) ? child : undefined;
  };

  /** A `connect` checked (every option validated, nothing sent yet). */
  interface Admission {
    readonly mac: string;
    readonly resolved: ReturnType<typeof resolveOptions>;
    readonly keepAlive: boolean;
  }
  const check = (address: string, connectOptions: PoolConnectOptions = {}): Admission => {
    if (closed) throw new Error('the adapter pool is closed');
    const mac = validateMac(address, 'address');
    const resolved = resolveOptions({ ...options.defaults, ...connectOptions, address: mac });
    const keepAlive = connectOptions.keepAlive ?? options.defaults?.keepAlive ?? true;
    if (typeof keepAlive !== 'boolean') throw new TypeError('keepAlive must be a boolean');
    return { mac, resolved, keepAlive };
  };
  const admit = ({ mac, resolved, keepAlive }: Admission): PooledConnectionActor => {
    if (closed) throw new Error('the adapter pool is closed');
    validators.set(mac, resolved.validate);
    endErrors.delete(mac);
    mirrorSync.announce(mac);
    actor.send({
      type: 'CONNECT_DEVICE',
      address: mac,
      keepAlive,
      settings: {
        maxAttempts: resolved.maxAttempts,
        attemptTimeoutMs: resolved.attemptTimeoutMs,
        closeInactiveConnections: resolved.closeInactiveConnections,
        escalation: resolved.escalation,
        backoffMs: resolved.backoffMs,
        watchdog: resolved.watchdog,
        disconnectTimeoutMs: resolved.disconnectTimeoutMs,
        rediscoveryTimeoutMs: resolved.rediscoveryTimeoutMs,
      },
    });
    const child = childOf(mac);
    if (child === undefined) throw new Error(`${mac}: the pool did not create a connection actor`);
    return child;
  };
  const connect = (address: string, connectOptions: PoolConnectOptions = {}): PooledConnectionActor =>
    admit(check(address, connectOptions));

  // `connected()` admits at most CONNECTED_CALLS_PER_TURN devices per macrotask; the others wait
  // for a later one (setImmediate), in call order. Admitting a device spawns its connection actor
  // and runs two pool steps, about a millisecond: a thousand calls in one go would otherwise be
  // one synchronous block of a second. `connect()` returns the actor, so it admits at once.
  let callsThisTurn = 0;
  let turnEnd: Promise<void> | undefined;
  const endOfTurn = (): Promise<void> =>
    (turnEnd ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        turnEnd = undefined;
        callsThisTurn = 0;
        resolve();
      }),
    ));
  const countCall = (): void => {
    if (callsThisTurn === 0) void endOfTurn();
    callsThisTurn += 1;
  };
  /** Undefined when a call may admit now (counted); else resolves when its turn has come. */
  const callTurn = (signal: AbortSignal | undefined): Promise<void> | undefined => {
    if (callsThisTurn < CONNECTED_CALLS_PER_TURN) {
      countCall();
      return undefined;
    }
    return (async () => {
      while (callsThisTurn >= CONNECTED_CALLS_PER_TURN) {
        await endOfTurn();
        if (signal?.aborted) throw signal.reason;
      }
      countCall();
    })();
  };

  // Waits on the pool's emitted events, routed by address: one subscription for all waits, and an
  // event about one device runs that device's waits only (a wait per device for N devices would
  // otherwise make every event O(N)). Events without an address run every wait.
  const waits = new Map<string, Set<(e: PoolEmitted | null) => void>>();
  const waitSub = actor.on('*', (e) => {
    const event: PoolEmitted = e;
    if ('address' in event) {
      const set = waits.get(event.address);
      if (set !== undefined) for (const check of [...set]) check(event);
    } else {
      for (const set of [...waits.values()]) for (const check of [...set]) check(event);
    }
  });
  const waitFor = <T>(
    address: string,
    decide: (emitted: PoolEmitted | null) => { value: T } | { error: unknown } | undefined,
    signal?: AbortSignal,
  ): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      let set = waits.get(address);
      if (set === undefined) {
        set = new Set();
        waits.set(address, set);
      }
      const mine = set;
      const done = (outcome: { value: T } | { error: unknown }): void => {
        mine.delete(check);
        if (mine.size === 0 && waits.get(address) === mine) waits.delete(address);
        signal?.removeEventListener('abort', onAbort);
        if ('value' in outcome) resolve(outcome.value);
        else reject(outcome.error);
      };
      const onAbort = (): void => done({ error: signal?.reason });
      const check = (e: PoolEmitted | null): void => {
        if (!mine.has(check)) return;
        const outcome = decide(e);
        if (outcome !== undefined) done(outcome);
      };
      mine.add(check);
      signal?.addEventListener('abort', onAbort, { once: true });
      check(null);
    });

  return {
    actor,
    connect,
    async connected(address, connectOptions = {}) {
      if (typeof connectOptions !== 'object' || connectOptions === null)
        throw new TypeError('options must be an object');
      const { signal: rawSignal, ...rest } = connectOptions;
      const mac = validateMac(address, 'address');
      // A look-alike signal would throw inside the pool's event delivery when the device connects.
      const signal = validateSignal(rawSignal, 'signal');
      if (signal?.aborted) throw signal.reason;
      const admission = check(mac, rest);
      const turn = callTurn(signal);
      if (turn !== undefined) await turn;
      admit(admission);
      try {
        return await waitFor<PooledConnection>(
          mac,
          (e) => {
            const d = actor.getSnapshot().context.devices.get(mac);
            if (d === undefined) return { error: new Error(`${mac} left the pool before it connected`) };
            if (d.status === 'connected' && d.adapter !== null) {
              const child = childOf(mac);
              if (child !== undefined) return { value: { address: mac, adapter: d.adapter, child } };
            }
            if (d.status === 'failed' || (e?.type === 'device-failed' && e.address === mac)) {
              const error = e?.type === 'device-failed' && e.address === mac ? e.cause : endErrors.get(mac);
              return {
                error: error ?? new BluezError('CONNECTION_FAILED', 'other', d.error ?? `${mac} failed`),
              };
            }
            return undefined;
          },
          signal,
        );
      } catch (err) {
        if (isAbortError(err) || signal?.aborted) actor.send({ type: 'DISCONNECT_DEVICE', address: mac });
        throw err;
      }
    },
    async disconnect(address) {
      const mac = validateMac(address, 'address');
      if (actor.getSnapshot().context.devices.get(mac) === undefined) return;
      const gone = waitFor<void>(mac, () =>
        actor.getSnapshot().context.devices.get(mac) === undefined ? { value: undefined } : undefined,
      );
      actor.send({ type: 'DISCONNECT_DEVICE', address: mac });
      await gone;
    },
    child: (address) => childOf(validateMac(address, 'address')),
    snapshot() {
      const context = actor.getSnapshot().context;
      const report = slotReport(context);
      return {
        bluezUp: context.bluezUp,
        adapters: Object.values(context.adapters)
          .sort((a, b) => Number(a.name.slice(3)) - Number(b.name.slice(3)))
          .map((a) => ({
            name: a.name,
            present: a.present,
            powered: a.powered,
            limit: effectiveLimit(context, a.name),
            learnedLimit: a.learnedLimit,
            inUse: report.inUse[a.name] ?? [],
            recentFailures: a.recentFailures,
            foreignAttempts: context.foreignAttempts?.[a.name] ?? 0,
          })),
        queued: report.queued,
        devices: context.devices.values().map((d) => ({
          address: d.address,
          status: d.status,
          adapter: d.adapter,
          error: d.error,
        })),
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      stopWatchingSlots();
      mirrorSync.stop();
      for (const sub of offLog) sub.unsubscribe();
      offFailed.unsubscribe();
      waitSub.unsubscribe();
      actor.stop();
      // Children stopped in any state: no lock outlives them.
      leases.releaseAll();
      validators.clear();
      await stallGuard?.close();
    },
    get heldLocks() {
      return leases.size;
    },
  };
}
