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
import { BLUEZ_ROOT, adapterPath, devicePath, validateSignal, validateTimeoutMs } from './validate.js';
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

/** Why the mirror was (re)built. */
export type RebuildReason = 'initial' | 'ownerChanged' | 'reconnected' | 'retry';

/** Events of the mirror. Every `on` returns its unsubscribe function. */
export type MirrorEvents = {
  /** Any object/interface/property change. */
  change: (change: MirrorChange) => void;
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
}

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
    for (const [path, ifaces] of this.tree) {
      const p = ifaces.get(IFACE.adapter);
      if (p) out.push(toAdapter(path, p));
    }
    return out.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  }

  /** One adapter by name, or undefined. Validates the name. */
  adapter(name: string): AdapterSnapshot | undefined {
    const path = adapterPath(name);
    const p = this.tree.get(path)?.get(IFACE.adapter);
    return p ? toAdapter(path, p) : undefined;
  }

  /** Every device, optionally only those of one adapter. */
  devices(adapter?: string): DeviceSnapshot[] {
    const prefix = adapter === undefined ? undefined : `${adapterPath(adapter)}/`;
    const out: DeviceSnapshot[] = [];
    for (const [path, ifaces] of this.tree) {
      if (prefix && !path.startsWith(prefix)) continue;
      const p = ifaces.get(IFACE.device);
      if (p) out.push(toDevice(path, p));
    }
    return out;
  }

  /** The device `address` on `adapter`, or undefined. Validates both. */
  device(adapter: string, address: string): DeviceSnapshot | undefined {
    const path = devicePath(adapter, address);
    const p = this.tree.get(path)?.get(IFACE.device);
    return p ? toDevice(path, p) : undefined;
  }

  /** Adapters on which a device with `address` is known. */
  adaptersSeeing(address: string): DeviceSnapshot[] {
    return this.adapters()
      .map((a) => this.device(a.name, address))
      .filter((d): d is DeviceSnapshot => d !== undefined);
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
    const prefix = `${parent}/`;
    const out: Array<[string, T]> = [];
    for (const [path, ifaces] of this.tree) {
      if (!path.startsWith(prefix) || path.indexOf('/', prefix.length) !== -1) continue;
      const p = ifaces.get(iface);
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
      offs.push(this.on('change', check), this.on('rebuilt', check), this.on('ownerChanged', check));
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

  /** Number of pending waits (tests check it returns to 0). */
  get pendingWaits(): number {
    return this.waiters.size;
  }

  /** Removes our match rules and listeners, rejects pending waits. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.syncGeneration += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const off of this.unsubscribe.splice(0)) off();
    for (const w of [...this.waiters]) w(new BusLostError('the BlueZ mirror was closed'));
    this.removeAllListeners();
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
    const generation = ++this.syncGeneration;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.syncedValue = false;
    this.buffered = [];
    let owner: string | undefined;
    let next: Tree;
    let replySeq = Number.POSITIVE_INFINITY;
    try {
      owner = await this.getOwner();
      if (generation !== this.syncGeneration) return;
      if (owner === undefined) {
        next = new Map();
      } else {
        const reply = await this.getManagedObjects(owner);
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

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.retryDelayMs;
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, 30_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.resync('retry');
    }, delay);
  }

  private async getOwner(): Promise<string | undefined> {
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
        { timeoutMs: this.timeouts.callTimeoutMs },
      );
      return typeof body[0] === 'string' ? body[0] : undefined;
    } catch (err) {
      if (err instanceof BluezError && err.dbusName === 'org.freedesktop.DBus.Error.NameHasNoOwner')
        return undefined;
      throw err;
    }
  }

  private async getManagedObjects(owner: string): Promise<{ tree: Tree; seq: number }> {
    const { body, seq } = await this.bus.callOrdered(
      { destination: owner, path: '/', interface: IFACE.objectManager, member: 'GetManagedObjects' },
      // The view every decision is made from: ahead of queued calls (src/bluez/call-gate.ts).
      { timeoutMs: this.timeouts.callTimeoutMs, priority: 'control' },
    );
    return { tree: decodeManagedObjects(body[0]), seq };
  }

  private replaceTree(next: Tree): void {
    const prev = this.tree;
    this.tree = next;
    this.changedAt.clear();
    for (const [path, ifaces] of prev) {
      const now = next.get(path);
      const gone = [...ifaces.keys()].filter((i) => !now?.has(i));
      if (gone.length > 0) this.emit('change', { type: 'interfacesRemoved', path, interfaces: gone });
    }
    for (const [path, ifaces] of next) {
      const before = prev.get(path);
      const added = [...ifaces.keys()].filter((i) => !before?.has(i));
      if (added.length > 0) this.emit('change', { type: 'interfacesAdded', path, interfaces: added });
      if (!before) continue;
      for (const [iface, props] of ifaces) {
        const old = before.get(iface);
        if (!old) continue;
        const changed = diffProps(old, props);
        if (changed.length > 0)
          this.emit('change', { type: 'propertiesChanged', path, interface: iface, changed });
      }
    }
  }

  private onBusLost(): void {
    // Without a bus there is no BlueZ to see: empty the tree so that nobody acts on stale state.
    this.syncGeneration += 1;
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
        // bluetoothd went away: drop its whole tree at once (its InterfacesRemoved never come).
        this.syncGeneration += 1;
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
    this.emit('change', { type: 'propertiesChanged', path, interface: iface, changed: [name] });
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
    this.emit('change', { type: 'interfacesAdded', path, interfaces: [...added.keys()] });
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
    if (gone.length > 0) this.emit('change', { type: 'interfacesRemoved', path, interfaces: gone });
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
    this.emit('change', { type: 'propertiesChanged', path, interface: iface, changed: names });
    const value = changed.get('Value');
    if (iface === IFACE.characteristic && Buffer.isBuffer(value)) this.emit('value', path, value);
  }
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
