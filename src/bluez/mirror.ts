/**
 * The ObjectManager mirror: one GetManagedObjects, then InterfacesAdded/InterfacesRemoved and
 * PropertiesChanged through our own AddMatch rules. Everything in the library reads BlueZ state
 * from here and waits on it with {@link BluezMirror.waitFor}, so nothing polls: an idle library
 * sends no D-Bus message at all.
 *
 * Why raw match rules instead of dbus-next proxies: proxies only deliver signals that the remote
 * introspection declares and their match rules are never removed (docs/bluez-facts.md, D-Bus).
 *
 * When the org.bluez owner changes (bluetoothd restart) or the bus reconnects, the tree is
 * rebuilt from a fresh GetManagedObjects and the differences are emitted, so no stale object
 * survives a restart.
 */
import { TypedEmitter } from './emitter.js';
import { BluezError, BusLostError, type ErrorClass } from './errors.js';
import type { SharedBus, SignalMessage } from './bus.js';
import {
  BLUEZ_ROOT,
  adapterOfPath,
  adapterPath,
  devicePath,
  devicePathOf,
  validateSignal,
  validateTimeoutMs,
} from './validate.js';
import {
  IFACE,
  decodeInterfaces,
  decodeManagedObjects,
  decodeProps,
  toAdapter,
  toCharacteristic,
  toDescriptor,
  toDevice,
  toService,
} from './variant.js';
import type {
  AdapterSnapshot,
  DeviceSnapshot,
  GattCharacteristicSnapshot,
  GattDescriptorSnapshot,
  GattServiceSnapshot,
  WaitOptions,
} from './types.js';

const BLUEZ_NAME = 'org.bluez';
const DBUS_NAME = 'org.freedesktop.DBus';

/** The match rules the mirror installs (and removes again on close). */
export const MIRROR_MATCH_RULES: readonly string[] = [
  `type='signal',sender='${DBUS_NAME}',path='/org/freedesktop/DBus',interface='${DBUS_NAME}',member='NameOwnerChanged',arg0='${BLUEZ_NAME}'`,
  `type='signal',sender='${BLUEZ_NAME}',interface='${IFACE.objectManager}'`,
  `type='signal',sender='${BLUEZ_NAME}',interface='${IFACE.properties}',member='PropertiesChanged',path_namespace='${BLUEZ_ROOT}'`,
];

/** One change applied to the mirror. */
export type MirrorChange =
  | { readonly type: 'interfacesAdded'; readonly path: string; readonly interfaces: readonly string[] }
  | { readonly type: 'interfacesRemoved'; readonly path: string; readonly interfaces: readonly string[] }
  | {
      readonly type: 'propertiesChanged';
      readonly path: string;
      readonly interface: string;
      /** Names of properties that changed or were invalidated. */
      readonly changed: readonly string[];
    };

/**
 * What changed in the mirror during one turn of the event loop (signals that arrive together are
 * applied one by one, then reported once): the pool and anything else that derives state from many
 * objects update only what is named here instead of rescanning the tree per signal.
 */
export interface MirrorChangeBatch {
  /**
   * True when the whole tree may have changed (a rebuild, bluetoothd gone, the bus lost) or the
   * org.bluez owner changed: derive everything again.
   */
  readonly full: boolean;
  /** Adapter names whose Adapter1 object was added, removed or changed a property. */
  readonly adapters: ReadonlySet<string>;
  /** Device addresses (any adapter) whose Device1 object was added, removed or changed a property. */
  readonly devices: ReadonlySet<string>;
  /** Adapter names whose set of connected devices may have changed. */
  readonly links: ReadonlySet<string>;
}

interface PendingBatch {
  full: boolean;
  adapters: Set<string>;
  devices: Set<string>;
  links: Set<string>;
}

/** Why the mirror was (re)built. */
export type RebuildReason = 'initial' | 'ownerChanged' | 'reconnected' | 'retry';

/** Events of the mirror. Every `on` returns its unsubscribe function. */
export type MirrorEvents = {
  /** Any object/interface/property change. */
  change: (change: MirrorChange) => void;
  /**
   * Once per event-loop turn in which anything changed (after the `change` events of that turn,
   * in a microtask): which adapters and devices changed ({@link MirrorChangeBatch}).
   */
  changes: (batch: MirrorChangeBatch) => void;
  /** A characteristic's Value changed (a notification, or a read that updated the cache). */
  value: (path: string, value: Buffer) => void;
  /** The org.bluez owner changed: bluetoothd started, stopped or restarted. `undefined` = no owner. */
  ownerChanged: (event: { previous: string | undefined; current: string | undefined }) => void;
  /** A full GetManagedObjects sync finished; the tree now matches `owner`. */
  rebuilt: (event: { reason: RebuildReason; owner: string | undefined; objects: number }) => void;
  /** A sync failed (bus lost, bluetoothd not answering); it is retried with backoff while org.bluez has an owner. */
  syncFailed: (error: unknown) => void;
};

type Tree = Map<string, Map<string, Map<string, unknown>>>;

/** A wait on the mirror did not see its condition before the deadline. */
export class WaitTimeoutError extends BluezError {
  /** The condition that was waited for. */
  readonly condition: string;
  /** @param condition - what was awaited; @param timeoutMs - the deadline; @param errorClass - docs/errors.md class */
  constructor(condition: string, timeoutMs: number, errorClass: ErrorClass = 'other', adapter?: string) {
    super('WAIT_TIMEOUT', errorClass, `timed out after ${timeoutMs} ms waiting for: ${condition}`, {
      adapter,
    });
    this.condition = condition;
  }
}

/** Options of {@link BluezMirror.waitFor}. */
export interface MirrorWaitOptions extends WaitOptions {
  /** Words for the timeout error, e.g. "Connected=false on hci1/AA:…". */
  description?: string;
  /** Class of the timeout error (default `other`). */
  errorClass?: ErrorClass;
  /**
   * The object paths the predicate reads. When given, the predicate is evaluated again only after
   * a change of one of these objects (and after a rebuild or owner change), not after every change
   * in the tree: a wait per device then costs nothing when other devices change. Leave it out
   * when the predicate reads anything else (other objects, lists).
   */
  paths?: readonly string[];
}

type PathListener = (change: MirrorChange) => void;
type ValueListener = (path: string, value: Buffer) => void;

/** Timeouts the mirror uses for its own calls. */
export interface MirrorTimeouts {
  /** GetManagedObjects and GetNameOwner. */
  callTimeoutMs: number;
  /** AddMatch / RemoveMatch. */
  matchTimeoutMs: number;
}

/**
 * Typed view of BlueZ's object tree, kept current by signals. Create it through `openBluez`.
 */
export class BluezMirror extends TypedEmitter<MirrorEvents> {
  private tree: Tree = new Map();
  private ownerValue: string | undefined;
  private syncedValue = false;
  private syncGeneration = 0;
  /** Aborts the calls of the sync in flight (GetNameOwner, GetManagedObjects) once it is superseded. */
  private syncAbort: AbortController | undefined;
  /** Signals that arrived while a sync was running; replayed if they came after its reply. */
  private buffered: SignalMessage[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = 500;
  private closed = false;
  private readonly unsubscribe: Array<() => void> = [];
  private readonly waiters = new Set<(err: unknown) => void>();
  private readonly started: Promise<void>;
  /**
   * Per object path: arrival order ({@link SignalMessage.seq}) of the last signal that changed a
   * property (key `interface␀name`) or added/removed an interface (key `interface`), since the
   * last rebuild; dropped with the object (so bounded by the tree); and the order of the GetManagedObjects reply the tree was rebuilt from. They decide
   * whether a value read with Properties.Get is newer than what the mirror holds.
   */
  private readonly changedAt = new Map<string, Map<string, number>>();
  private treeSeq = 0;

  // ---- indexes, kept in step with the tree by index() (every change goes through it) --------
  /** Paths with Adapter1. */
  private readonly adapterPaths = new Set<string>();
  /** Per adapter name: paths with Device1 below it (tree order). */
  private readonly devicesByAdapter = new Map<string, Set<string>>();
  /** Per device address: adapter name → path with Device1. */
  private readonly devicesByAddress = new Map<string, Map<string, string>>();
  /** Per adapter name: paths of its devices with Connected=true. */
  private readonly connectedByAdapter = new Map<string, Set<string>>();
  /** Per object path: its direct children in the tree. */
  private readonly childrenOf = new Map<string, Set<string>>();

  // ---- per-object dispatch ---------------------------------------------------------------------
  private readonly pathListeners = new Map<string, Set<PathListener>>();
  private readonly subtreeListeners = new Map<string, Set<PathListener>>();
  private readonly valueListeners = new Map<string, Set<ValueListener>>();
  private pending: PendingBatch | undefined;

  /** @internal created by openBluez */
  constructor(
    private readonly bus: SharedBus,
    private readonly timeouts: MirrorTimeouts,
  ) {
    super();
    this.unsubscribe.push(
      bus.on('signal', (msg) => this.onSignal(msg)),
      bus.on('lost', () => this.onBusLost()),
      bus.on('connected', () => void this.resync('reconnected')),
    );
    this.started = this.start();
  }

  /** The unique bus name of bluetoothd (org.bluez owner), or undefined when absent. */
  get owner(): string | undefined {
    return this.ownerValue;
  }

  /** True once the tree reflects a complete GetManagedObjects of the current owner (or its absence). */
  get synced(): boolean {
    return this.syncedValue;
  }

  /** True when org.bluez is on the bus and the mirror is synced with it. */
  get bluezReady(): boolean {
    return this.syncedValue && this.ownerValue !== undefined;
  }

  /** Number of objects in the tree. */
  get size(): number {
    return this.tree.size;
  }

  /** Resolves after the match rules are in place and the first sync attempt finished; rejects when a rule was refused. @internal */
  whenStarted(): Promise<void> {
    return this.started;
  }

  /** Every adapter, sorted by name. */
  adapters(): AdapterSnapshot[] {
    const out: AdapterSnapshot[] = [];
    for (const path of this.adapterPaths) {
      const p = this.tree.get(path)?.get(IFACE.adapter);
      if (p) out.push(toAdapter(path, p));
    }
    return out.sort((a, b) => byName.compare(a.name, b.name));
  }

  /** One adapter by name, or undefined. Validates the name. */
  adapter(name: string): AdapterSnapshot | undefined {
    const path = adapterPath(name);
    const p = this.tree.get(path)?.get(IFACE.adapter);
    return p ? toAdapter(path, p) : undefined;
  }

  /** Every device, optionally only those of one adapter. */
  devices(adapter?: string): DeviceSnapshot[] {
    const out: DeviceSnapshot[] = [];
    if (adapter !== undefined) {
      adapterPath(adapter); // validates the name
      for (const path of this.devicesByAdapter.get(adapter) ?? []) {
        const p = this.tree.get(path)?.get(IFACE.device);
        if (p) out.push(toDevice(path, p));
      }
      return out;
    }
    for (const [path, ifaces] of this.tree) {
      const p = ifaces.get(IFACE.device);
      if (p) out.push(toDevice(path, p));
    }
    return out;
  }

  /** Devices of `adapter` with Connected=true (from an index: no scan of the tree). */
  connectedDevices(adapter: string): DeviceSnapshot[] {
    adapterPath(adapter); // validates the name
    const out: DeviceSnapshot[] = [];
    for (const path of this.connectedByAdapter.get(adapter) ?? []) {
      const p = this.tree.get(path)?.get(IFACE.device);
      if (p) out.push(toDevice(path, p));
    }
    return out;
  }

  /** Addresses of the devices of `adapter` with Connected=true, sorted (from an index). */
  connectedAddresses(adapter: string): string[] {
    const out: string[] = [];
    for (const path of this.connectedByAdapter.get(adapter) ?? []) {
      if (devicePathOf(path) === path) out.push(addressOfDevicePath(path));
    }
    return out.sort();
  }

  /** Number of devices of `adapter` with Connected=true. */
  connectedCount(adapter: string): number {
    return this.connectedByAdapter.get(adapter)?.size ?? 0;
  }

  /** The device `address` on `adapter`, or undefined. Validates both. */
  device(adapter: string, address: string): DeviceSnapshot | undefined {
    const path = devicePath(adapter, address);
    const p = this.tree.get(path)?.get(IFACE.device);
    return p ? toDevice(path, p) : undefined;
  }

  /** Adapters on which a device with `address` is known. */
  adaptersSeeing(address: string): DeviceSnapshot[] {
    const out: DeviceSnapshot[] = [];
    const paths = this.devicesByAddress.get(address.toUpperCase());
    if (paths === undefined) return out;
    for (const [adapter, path] of paths) {
      if (!this.adapterPaths.has(adapterPath(adapter))) continue; // a device of an adapter BlueZ no longer shows
      const p = this.tree.get(path)?.get(IFACE.device);
      if (p) out.push(toDevice(path, p));
    }
    return out.sort((a, b) => byName.compare(a.adapter, b.adapter));
  }

  /**
   * Where `address` is known, as adapter name → RSSI (undefined when BlueZ has none), adapters in
   * name order. Like {@link BluezMirror.adaptersSeeing} without building full snapshots.
   */
  rssiByAdapter(address: string): Array<[adapter: string, rssi: number | undefined]> {
    const out: Array<[string, number | undefined]> = [];
    const paths = this.devicesByAddress.get(address.toUpperCase());
    if (paths === undefined) return out;
    for (const [adapter, path] of paths) {
      if (!this.adapterPaths.has(adapterPath(adapter))) continue;
      const p = this.tree.get(path)?.get(IFACE.device);
      if (p === undefined) continue;
      const rssi = p.get('RSSI');
      out.push([adapter, typeof rssi === 'number' ? rssi : undefined]);
    }
    return out.sort((a, b) => byName.compare(a[0], b[0]));
  }

  /** GATT services below a device path. */
  services(devicePathValue: string): GattServiceSnapshot[] {
    return this.childrenWith(devicePathValue, IFACE.service, toService);
  }

  /** GATT characteristics below a service path. */
  characteristics(servicePath: string): GattCharacteristicSnapshot[] {
    return this.childrenWith(servicePath, IFACE.characteristic, toCharacteristic);
  }

  /** GATT descriptors below a characteristic path. */
  descriptors(characteristicPath: string): GattDescriptorSnapshot[] {
    return this.childrenWith(characteristicPath, IFACE.descriptor, toDescriptor);
  }

  /** One characteristic by path, or undefined. */
  characteristic(path: string): GattCharacteristicSnapshot | undefined {
    const p = this.tree.get(path)?.get(IFACE.characteristic);
    return p ? toCharacteristic(path, p) : undefined;
  }

  /** True when `path` exists (optionally with `iface`). */
  has(path: string, iface?: string): boolean {
    const ifaces = this.tree.get(path);
    return ifaces !== undefined && (iface === undefined || ifaces.has(iface));
  }

  /** Every object path in the tree (sorted). */
  paths(): string[] {
    return [...this.tree.keys()].sort();
  }

  private childrenWith<T>(
    parent: string,
    iface: string,
    build: (path: string, p: Map<string, unknown>) => T,
  ): T[] {
    const out: Array<[string, T]> = [];
    for (const path of this.childrenOf.get(parent) ?? []) {
      const p = this.tree.get(path)?.get(iface);
      if (p) out.push([path, build(path, p)]);
    }
    return out.sort((a, b) => a[0].localeCompare(b[0])).map(([, v]) => v);
  }

  /**
   * Resolves with the first truthy value of `predicate`, evaluated now and after every change,
   * rebuild and owner change. Never polls. Rejects with {@link WaitTimeoutError} at `timeoutMs`,
   * with `signal.reason` on abort, and with {@link BusLostError} when the mirror is closed.
   */
  waitFor<T>(
    predicate: (mirror: BluezMirror) => T | undefined | null | false,
    options: MirrorWaitOptions = {},
  ): Promise<T> {
    const timeoutMs =
      options.timeoutMs === undefined ? undefined : validateTimeoutMs(options.timeoutMs, 'timeoutMs');
    const signal = validateSignal(options.signal);
    const paths = options.paths;
    if (paths !== undefined && (!Array.isArray(paths) || !paths.every((p) => typeof p === 'string')))
      throw new TypeError('paths must be an array of object paths');
    if (this.closed) return Promise.reject(new BusLostError('the BlueZ mirror is closed'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    try {
      const now = predicate(this);
      if (now !== undefined && now !== null && now !== false) return Promise.resolve(now);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<T>((resolve, reject) => {
      const offs: Array<() => void> = [];
      let timer: NodeJS.Timeout | undefined;
      const finish = (err: unknown, value?: T): void => {
        for (const off of offs) off();
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(finish);
        if (err === undefined) resolve(value as T);
        else reject(err);
      };
      const check = (): void => {
        try {
          const v = predicate(this);
          if (v !== undefined && v !== null && v !== false) finish(undefined, v);
        } catch (err) {
          finish(err);
        }
      };
      const onAbort = (): void => finish(signal?.reason);
      // A predicate over anything may also read state derived from the mirror by a `changes`
      // subscriber (e.g. an adapter pool's view of usable adapters), which is updated once per
      // tick after the `change` events: check again then too.
      if (paths === undefined) offs.push(this.on('change', check), this.on('changes', check));
      else for (const path of paths) offs.push(this.onPath(path, check));
      offs.push(this.on('rebuilt', check), this.on('ownerChanged', check));
      this.waiters.add(finish);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () =>
            finish(
              new WaitTimeoutError(options.description ?? 'mirror condition', timeoutMs, options.errorClass),
            ),
          timeoutMs,
        );
      }
    });
  }

  /**
   * Calls `listener` for every change of the object at `path` (with `subtree`, also of every
   * object below it). Costs nothing when other objects change: the mirror dispatches each change
   * to the listeners of its own path and of its ancestors only.
   * @returns the unsubscribe function (idempotent)
   */
  onPath(
    path: string,
    listener: (change: MirrorChange) => void,
    options: { subtree?: boolean } = {},
  ): () => void {
    return addTo(options.subtree === true ? this.subtreeListeners : this.pathListeners, path, listener);
  }

  /**
   * Calls `listener` for every characteristic Value change at or below `path` (e.g. a device
   * path: all its notifications), dispatched by path like {@link BluezMirror.onPath}.
   * @returns the unsubscribe function (idempotent)
   */
  onValue(path: string, listener: (path: string, value: Buffer) => void): () => void {
    return addTo(this.valueListeners, path, listener);
  }

  /** Listeners registered with onPath/onValue (tests check they return to 0). */
  get pathListenerCount(): number {
    let n = 0;
    for (const map of [this.pathListeners, this.subtreeListeners, this.valueListeners])
      for (const set of map.values()) n += set.size;
    return n;
  }

  /** Number of pending waits (tests check it returns to 0). */
  get pendingWaits(): number {
    return this.waiters.size;
  }

  /** Removes our match rules and listeners, rejects pending waits. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.supersedeSync();
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const off of this.unsubscribe.splice(0)) off();
    for (const w of [...this.waiters]) w(new BusLostError('the BlueZ mirror was closed'));
    this.removeAllListeners();
    this.pathListeners.clear();
    this.subtreeListeners.clear();
    this.valueListeners.clear();
    this.pending = undefined;
    await Promise.all(
      MIRROR_MATCH_RULES.map((rule) =>
        this.bus.removeMatch(rule, { timeoutMs: this.timeouts.matchTimeoutMs }),
      ),
    );
  }

  private async start(): Promise<void> {
    // Rules first, then the snapshot: a change between the two is then either in the snapshot
    // or delivered as a signal after it, never lost.
    // A rule that the daemon refused would silently blind the mirror, so that failure is fatal
    // (a lost bus is not: the rule stays registered and is re-added on reconnect).
    await Promise.all(
      MIRROR_MATCH_RULES.map((rule) => this.bus.addMatch(rule, { timeoutMs: this.timeouts.matchTimeoutMs })),
    );
    if (this.bus.state === 'connected') await this.resync('initial');
  }

  /**
   * Rebuilds the tree from GetNameOwner + GetManagedObjects and emits the differences.
   * Signals that arrive while a sync runs are buffered: those that arrived before the
   * GetManagedObjects reply are already reflected in it (bluetoothd writes both to one ordered
   * stream) and are dropped; those after it are replayed on the new tree.
   */
  private async resync(reason: RebuildReason): Promise<void> {
    if (this.closed) return;
    this.supersedeSync();
    const generation = this.syncGeneration;
    const abort = new AbortController();
    this.syncAbort = abort;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.syncedValue = false;
    this.buffered = [];
    let owner: string | undefined;
    let next: Tree;
    let replySeq = Number.POSITIVE_INFINITY;
    try {
      owner = await this.getOwner(abort.signal);
      if (generation !== this.syncGeneration) return;
      if (owner === undefined) {
        next = new Map();
      } else {
        const reply = await this.getManagedObjects(owner, abort.signal);
        next = reply.tree;
        replySeq = reply.seq;
      }
    } catch (err) {
      if (generation !== this.syncGeneration || this.closed) return;
      this.emit('syncFailed', err);
      // A lost bus resyncs on 'connected'; anything else (bluetoothd busy, hung) is retried with backoff.
      if (!(err instanceof BusLostError)) this.scheduleRetry();
      return;
    }
    if (generation !== this.syncGeneration || this.closed) return;
    this.syncAbort = undefined;
    this.retryDelayMs = 500;
    const previousOwner = this.ownerValue;
    this.ownerValue = owner;
    this.treeSeq = replySeq;
    this.replaceTree(next);
    this.syncedValue = true;
    const late = this.buffered.filter((m) => m.seq > replySeq);
    this.buffered = [];
    for (const msg of late) this.applyBluezSignal(msg);
    if (previousOwner !== owner) this.emit('ownerChanged', { previous: previousOwner, current: owner });
    this.emit('rebuilt', { reason, owner, objects: this.tree.size });
  }

  /**
   * A newer sync, bluetoothd leaving, a lost bus or close() makes the sync in flight worthless: its
   * result would be dropped, so its calls are aborted instead of running to their deadlines.
   */
  private supersedeSync(): void {
    this.syncGeneration += 1;
    const abort = this.syncAbort;
    this.syncAbort = undefined;
    abort?.abort();
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.retryDelayMs;
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, 30_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.resync('retry');
    }, delay);
  }

  private async getOwner(signal: AbortSignal): Promise<string | undefined> {
    try {
      const body = await this.bus.call(
        {
          destination: DBUS_NAME,
          path: '/org/freedesktop/DBus',
          interface: DBUS_NAME,
          member: 'GetNameOwner',
          signature: 's',
          body: [BLUEZ_NAME],
        },
        { timeoutMs: this.timeouts.callTimeoutMs, signal },
      );
      return typeof body[0] === 'string' ? body[0] : undefined;
    } catch (err) {
      if (err instanceof BluezError && err.dbusName === 'org.freedesktop.DBus.Error.NameHasNoOwner')
        return undefined;
      throw err;
    }
  }

  private async getManagedObjects(owner: string, signal: AbortSignal): Promise<{ tree: Tree; seq: number }> {
    const { body, seq } = await this.bus.callOrdered(
      { destination: owner, path: '/', interface: IFACE.objectManager, member: 'GetManagedObjects' },
      // The view every decision is made from: ahead of queued calls (src/bluez/call-gate.ts).
      { timeoutMs: this.timeouts.callTimeoutMs, priority: 'control', signal },
    );
    return { tree: decodeManagedObjects(body[0]), seq };
  }

  private replaceTree(next: Tree): void {
    const prev = this.tree;
    this.tree = next;
    this.changedAt.clear();
    this.reindexAll();
    this.batch().full = true;
    for (const [path, ifaces] of prev) {
      const now = next.get(path);
      const gone = [...ifaces.keys()].filter((i) => !now?.has(i));
      if (gone.length > 0) this.changed({ type: 'interfacesRemoved', path, interfaces: gone });
    }
    for (const [path, ifaces] of next) {
      const before = prev.get(path);
      const added = [...ifaces.keys()].filter((i) => !before?.has(i));
      if (added.length > 0) this.changed({ type: 'interfacesAdded', path, interfaces: added });
      if (!before) continue;
      for (const [iface, props] of ifaces) {
        const old = before.get(iface);
        if (!old) continue;
        const changed = diffProps(old, props);
        if (changed.length > 0) this.changed({ type: 'propertiesChanged', path, interface: iface, changed });
      }
    }
  }

  private reindexAll(): void {
    this.adapterPaths.clear();
    this.devicesByAdapter.clear();
    this.devicesByAddress.clear();
    this.connectedByAdapter.clear();
    this.childrenOf.clear();
    for (const path of this.tree.keys()) this.index(path);
  }

  /** Brings every index in line with the tree's entry for `path` (present or not). */
  private index(path: string): void {
    const ifaces = this.tree.get(path);
    const parent = path.slice(0, path.lastIndexOf('/'));
    if (ifaces === undefined) removeFrom(this.childrenOf, parent, path);
    else if (parent !== '') addTo(this.childrenOf, parent, path);
    if (ifaces?.has(IFACE.adapter) === true) this.adapterPaths.add(path);
    else this.adapterPaths.delete(path);
    const adapter = adapterOfPath(path);
    if (adapter === undefined || path.length <= adapterPath(adapter).length) return;
    const address = devicePathOf(path) === path ? addressOfDevicePath(path) : undefined;
    const device = ifaces?.get(IFACE.device);
    if (device === undefined) {
      removeFrom(this.devicesByAdapter, adapter, path);
      removeFrom(this.connectedByAdapter, adapter, path);
      if (address !== undefined) {
        const byAdapter = this.devicesByAddress.get(address);
        byAdapter?.delete(adapter);
        if (byAdapter?.size === 0) this.devicesByAddress.delete(address);
      }
      return;
    }
    addTo(this.devicesByAdapter, adapter, path);
    if (device.get('Connected') === true) addTo(this.connectedByAdapter, adapter, path);
    else removeFrom(this.connectedByAdapter, adapter, path);
    if (address !== undefined) {
      let byAdapter = this.devicesByAddress.get(address);
      if (byAdapter === undefined) {
        byAdapter = new Map();
        this.devicesByAddress.set(address, byAdapter);
      }
      byAdapter.set(adapter, path);
    }
  }

  private batch(): PendingBatch {
    if (this.pending === undefined) {
      const pending: PendingBatch = {
        full: false,
        adapters: new Set(),
        devices: new Set(),
        links: new Set(),
      };
      this.pending = pending;
      // Once the signals applied in this task are done (a microtask: before any other I/O or timer,
      // so the pool hears of a vanished adapter before a child's next step does).
      queueMicrotask(() => {
        if (this.pending !== pending || this.closed) return;
        this.pending = undefined;
        this.emit('changes', pending);
      });
    }
    return this.pending;
  }

  /**
   * One change applied to the tree (indexes already updated): the `change` event, the listeners
   * of that path and of its ancestors, and this turn's batch.
   */
  private changed(change: MirrorChange): void {
    const { path } = change;
    const batch = this.batch();
    const adapter = adapterOfPath(path);
    if (adapter !== undefined) {
      if (path.length === adapterPath(adapter).length) {
        batch.adapters.add(adapter);
      } else if (devicePathOf(path) === path) {
        batch.devices.add(addressOfDevicePath(path));
        if (change.type !== 'propertiesChanged' || change.changed.includes('Connected'))
          batch.links.add(adapter);
      }
    }
    this.emit('change', change);
    dispatch(this.pathListeners.get(path), change);
    if (this.subtreeListeners.size > 0) {
      for (let p = path; p.length > 0; p = p.slice(0, p.lastIndexOf('/')))
        dispatch(this.subtreeListeners.get(p), change);
    }
  }

  private onBusLost(): void {
    // Without a bus there is no BlueZ to see: empty the tree so that nobody acts on stale state.
    this.supersedeSync();
    this.syncedValue = false;
    const previous = this.ownerValue;
    this.ownerValue = undefined;
    this.replaceTree(new Map());
    if (previous !== undefined) this.emit('ownerChanged', { previous, current: undefined });
  }

  private onSignal(msg: SignalMessage): void {
    if (this.closed) return;
    if (msg.interface === DBUS_NAME && msg.member === 'NameOwnerChanged' && msg.sender === DBUS_NAME) {
      if (msg.body[0] !== BLUEZ_NAME) return;
      const current = typeof msg.body[2] === 'string' && msg.body[2] !== '' ? msg.body[2] : undefined;
      if (current === undefined) {
        // bluetoothd went away: drop its whole tree at once (its InterfacesRemoved never come),
        // and stop waiting for a GetManagedObjects it will never answer.
        this.supersedeSync();
        this.syncedValue = true;
        this.buffered = [];
        const previous = this.ownerValue;
        this.ownerValue = undefined;
        this.replaceTree(new Map());
        if (previous !== undefined) this.emit('ownerChanged', { previous, current: undefined });
        this.emit('rebuilt', { reason: 'ownerChanged', owner: undefined, objects: 0 });
      } else {
        void this.resync('ownerChanged');
      }
      return;
    }
    if (!this.syncedValue) {
      if (this.buffered.length < 100_000) this.buffered.push(msg);
      return;
    }
    this.applyBluezSignal(msg);
  }

  private applyBluezSignal(msg: SignalMessage): void {
    // Only the current owner's signals: a previous bluetoothd's late signals must not touch the new tree.
    if (this.ownerValue === undefined || msg.sender !== this.ownerValue) return;
    if (msg.interface === IFACE.objectManager) {
      if (msg.member === 'InterfacesAdded') this.onInterfacesAdded(msg.body, msg.seq);
      else if (msg.member === 'InterfacesRemoved') this.onInterfacesRemoved(msg.body, msg.seq);
    } else if (msg.interface === IFACE.properties && msg.member === 'PropertiesChanged') {
      this.onPropertiesChanged(msg.path, msg.body, msg.seq);
    }
  }

  /**
   * Corrects one property with a value read by Properties.Get, whose reply arrived as `seq`
   * ({@link SharedBus.callOrdered}). bluetoothd does not always signal a change (5.66 sometimes
   * never signals Connected=true on an LE connect while the property reads true), so a caller
   * that must know reads the property and corrects the mirror here. The read is ignored when it
   * is older than what the mirror holds: a signal that arrived after the reply changed the
   * property or re-added the interface, or the tree was rebuilt after it; and when the object is
   * not in the mirror. Emits a `propertiesChanged` change when the value differs.
   * @returns whether the mirror changed
   * @internal used by the operations in src/bluez
   */
  applyPropertyRead(path: string, iface: string, name: string, value: unknown, seq: number): boolean {
    if (this.closed || seq < this.treeSeq) return false;
    const props = this.tree.get(path)?.get(iface);
    if (!props) return false;
    const marks = this.changedAt.get(path);
    const newer = (key: string) => (marks?.get(key) ?? -1) > seq;
    if (newer(iface) || newer(`${iface}\0${name}`)) return false;
    if (props.has(name) && sameValue(props.get(name), value)) return false;
    props.set(name, value);
    this.mark(path, `${iface}\0${name}`, seq);
    this.index(path);
    this.changed({ type: 'propertiesChanged', path, interface: iface, changed: [name] });
    return true;
  }

  private mark(path: string, key: string, seq: number): void {
    let marks = this.changedAt.get(path);
    if (!marks) {
      marks = new Map();
      this.changedAt.set(path, marks);
    }
    marks.set(key, seq);
  }

  private onInterfacesAdded(body: readonly unknown[], seq: number): void {
    const path = body[0];
    if (typeof path !== 'string') return;
    const added = decodeInterfaces(body[1]);
    for (const iface of added.keys()) this.mark(path, iface, seq);
    let ifaces = this.tree.get(path);
    if (!ifaces) {
      ifaces = new Map();
      this.tree.set(path, ifaces);
    }
    for (const [iface, props] of added) ifaces.set(iface, props);
    this.index(path);
    this.changed({ type: 'interfacesAdded', path, interfaces: [...added.keys()] });
  }

  private onInterfacesRemoved(body: readonly unknown[], seq: number): void {
    const path = body[0];
    const removed = body[1];
    if (typeof path !== 'string' || !Array.isArray(removed)) return;
    const ifaces = this.tree.get(path);
    if (!ifaces) return;
    const gone = removed.filter((i): i is string => typeof i === 'string' && ifaces.has(i));
    const marks = this.changedAt.get(path);
    for (const iface of gone) {
      ifaces.delete(iface);
      // Property marks of a removed interface are superseded by the interface mark.
      for (const key of [...(marks?.keys() ?? [])]) if (key.startsWith(`${iface}\0`)) marks?.delete(key);
      this.mark(path, iface, seq);
    }
    if (ifaces.size === 0) {
      // A read only corrects objects in the tree, and a re-added object is marked anew.
      this.tree.delete(path);
      this.changedAt.delete(path);
    }
    this.index(path);
    if (gone.length > 0) this.changed({ type: 'interfacesRemoved', path, interfaces: gone });
  }

  private onPropertiesChanged(path: string, body: readonly unknown[], seq: number): void {
    const iface = body[0];
    if (typeof iface !== 'string') return;
    const props = this.tree.get(path)?.get(iface);
    if (!props) return; // not (yet) an object we know: its InterfacesAdded carries the full state
    const changed = decodeProps(body[1]);
    const invalidated = Array.isArray(body[2])
      ? body[2].filter((x): x is string => typeof x === 'string')
      : [];
    for (const [k, v] of changed) props.set(k, v);
    for (const k of invalidated) props.delete(k);
    const names = [...changed.keys(), ...invalidated];
    for (const k of names) this.mark(path, `${iface}\0${k}`, seq);
    if (names.length === 0) return;
    if (iface === IFACE.device || iface === IFACE.adapter) this.index(path);
    this.changed({ type: 'propertiesChanged', path, interface: iface, changed: names });
    const value = changed.get('Value');
    if (iface === IFACE.characteristic && Buffer.isBuffer(value)) {
      this.emit('value', path, value);
      if (this.valueListeners.size > 0) {
        for (let p = path; p.length > 0; p = p.slice(0, p.lastIndexOf('/'))) {
          const set = this.valueListeners.get(p);
          if (set !== undefined) for (const l of [...set]) isolate(() => l(path, value));
        }
      }
    }
  }
}

/** Adapter names in numeric order (hci2 before hci10); one collator, not one per comparison. */
const byName = new Intl.Collator('en', { numeric: true });

function addTo<V>(map: Map<string, Set<V>>, key: string, value: V): () => void {
  let set = map.get(key);
  if (set === undefined) {
    set = new Set();
    map.set(key, set);
  }
  set.add(value);
  return () => removeFrom(map, key, value);
}

function removeFrom<V>(map: Map<string, Set<V>>, key: string, value: V): void {
  const set = map.get(key);
  if (set === undefined) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}

function isolate(run: () => void): void {
  try {
    run();
  } catch (err) {
    // Like the emitter: a throwing listener must not break dispatch for the others.
    process.emitWarning(`a mirror path listener threw: ${String(err)}`, 'BluezListenerWarning');
  }
}

function dispatch(set: Set<PathListener> | undefined, change: MirrorChange): void {
  if (set === undefined) return;
  if (set.size === 1) {
    for (const l of set) isolate(() => l(change));
    return;
  }
  for (const l of [...set]) isolate(() => l(change));
}

/** `/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF` → `AA:BB:CC:DD:EE:FF` (the path must be a device path). */
function addressOfDevicePath(path: string): string {
  return path.slice(path.lastIndexOf('/') + 5).replace(/_/g, ':');
}

function diffProps(a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): string[] {
  const out: string[] = [];
  for (const [k, v] of b) if (!sameValue(a.get(k), v)) out.push(k);
  for (const k of a.keys()) if (!b.has(k)) out.push(k);
  return out;
}

function sameValue(x: unknown, y: unknown): boolean {
  if (Buffer.isBuffer(x) && Buffer.isBuffer(y)) return x.equals(y);
  if (typeof x === 'object' || typeof y === 'object') {
    try {
      return JSON.stringify(x, bigintSafe) === JSON.stringify(y, bigintSafe);
    } catch {
      return false;
    }
  }
  return x === y;
}

function bigintSafe(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}
