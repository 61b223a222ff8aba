/**
 * The simulator's own D-Bus connection: it owns `org.bluez`, keeps the object
 * tree, answers org.freedesktop.DBus.Properties and ObjectManager itself, logs
 * every method call, and can stall or hang calls on purpose.
 *
 * Properties are answered here rather than by dbus-next because bluetoothd
 * omits optional properties it has no value for (RSSI of a device not seen in
 * this discovery, Name of an anonymous device): GetAll leaves them out and Get
 * fails with InvalidArgs. dbus-next's own handler would send a service error.
 */
import dbus from 'dbus-next';
import './dbus-next-patch.js';
import type { ExportedInterface } from './exported.js';
import { createInterface } from './exported.js';
import { BluezErrors, OBJECT_MANAGER } from './bluez-interfaces.js';
import type { SimCall } from './types.js';

const METHOD_CALL = 1;
const METHOD_RETURN = 2;
const ERROR = 3;
const PROPERTIES = 'org.freedesktop.DBus.Properties';
const INTROSPECTABLE = 'org.freedesktop.DBus.Introspectable';
const PEER = 'org.freedesktop.DBus.Peer';

/** The fields of a dbus-next Message the simulator reads (its typings are wrong about some). */
export interface RawMessage {
  type: number;
  serial: number | null;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  destination?: string;
  sender?: string;
  signature?: string;
  body: unknown[];
}

interface MessageStatics {
  newError(msg: RawMessage, name: string, text: string): RawMessage;
  newMethodReturn(msg: RawMessage, signature: string, body: unknown[]): RawMessage;
}
const Msg = dbus.Message as unknown as MessageStatics;

interface InternalBus {
  send(msg: RawMessage): void;
  _connection: { emit(event: 'message', msg: RawMessage): boolean };
}

/** One object in the tree. */
export interface SimObject {
  path: string;
  interfaces: ExportedInterface[];
}

/** Decides whether a call is swallowed (never answered), for the `hang` fault. */
export type HangRule = (msg: RawMessage) => boolean;

/** Raised inside method backends; becomes a D-Bus error reply with this name. */
export function dbusError(name: string, text: string): dbus.DBusError {
  return new dbus.DBusError(name, text);
}

/** The variant form of a property value, for GetAll / InterfacesAdded bodies. */
function variantsOf(iface: ExportedInterface): Record<string, dbus.Variant> {
  const out: Record<string, dbus.Variant> = {};
  for (const p of iface.spec.properties) {
    const value = iface.backend.get(p.name);
    if (value !== undefined) out[p.name] = new dbus.Variant(p.signature, value);
  }
  return out;
}

export class SimBus {
  readonly bus: dbus.MessageBus;
  private readonly objects = new Map<string, SimObject>();
  private readonly pending = new Map<string, SimCall>();
  private stalledUntil = 0;
  private stallQueue: RawMessage[] = [];
  private stallTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly hung: RawMessage[] = [];
  private closed = false;
  private readonly root: ExportedInterface;
  /** Called when a unique name leaves the bus (a client disconnected). */
  onClientGone: (uniqueName: string) => void = () => undefined;
  hangRule: HangRule = () => false;
  /**
   * Sender of the call being dispatched. dbus-next invokes the method
   * synchronously right after the front handler, so a backend reads this
   * before its first await to learn who called (discovery and notify sessions
   * are per client in bluetoothd).
   */
  currentSender = '';
  /** `sender/serial` of the call being dispatched, read like {@link SimBus.currentSender}. */
  currentCall = '';
  /** Work to do right after a call's reply went out (keyed like {@link SimBus.currentCall}). */
  private readonly replyHooks = new Map<string, () => void>();
  /** InterfacesRemoved signals held back by {@link SimBus.holdRemovals}, in removal order. */
  private readonly heldRemovals = new Set<() => void>();
  private holding: (() => void)[] | undefined;
  /** bluetoothd is exiting: signals still go out, calls are no longer answered. */
  private silentReplies = false;

  constructor(
    busAddress: string,
    private readonly log: SimCall[],
    private readonly now: () => number,
  ) {
    this.bus = dbus.sessionBus({ busAddress });
    // dbus-next emits 'error' for socket failures; unhandled it would crash the process.
    this.bus.on('error', () => undefined);
    const internal = this.bus as unknown as InternalBus;
    const send = internal.send.bind(this.bus);
    internal.send = (m: RawMessage) => {
      if ((m.type === ERROR || m.type === METHOD_RETURN) && m.replySerial !== undefined) {
        const key = `${m.destination}/${m.replySerial}`;
        const call = this.pending.get(key);
        if (call) {
          this.pending.delete(key);
          call.answeredAt = this.now();
          if (m.type === ERROR && m.errorName) call.error = m.errorName;
        }
      }
      if (this.closed) return;
      if (this.silentReplies && (m.type === ERROR || m.type === METHOD_RETURN)) return;
      send(m);
      if ((m.type === ERROR || m.type === METHOD_RETURN) && m.replySerial !== undefined) {
        const key = `${m.destination}/${m.replySerial}`;
        const hook = this.replyHooks.get(key);
        if (hook) {
          this.replyHooks.delete(key);
          hook();
        }
      }
    };
    this.bus.addMethodHandler((m: RawMessage) => this.front(m));
    this.root = createInterface(OBJECT_MANAGER, {
      get: () => undefined,
      call: () => this.managedObjects(),
    });
    this.bus.export('/', this.root);
    this.bus.on('message', (msg: dbus.Message) => {
      const m = msg as unknown as RawMessage;
      if (
        m.type === 4 &&
        m.member === 'NameOwnerChanged' &&
        m.sender === 'org.freedesktop.DBus' &&
        typeof m.body[0] === 'string' &&
        m.body[0].startsWith(':') &&
        m.body[2] === ''
      ) {
        this.onClientGone(m.body[0]);
      }
    });
  }

  /** Connects, watches clients leaving, and takes `org.bluez`. */
  async start(): Promise<void> {
    await this.bus.call(
      new dbus.Message({
        destination: 'org.freedesktop.DBus',
        path: '/org/freedesktop/DBus',
        interface: 'org.freedesktop.DBus',
        member: 'AddMatch',
        signature: 's',
        body: ["type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"],
      }),
    );
    const reply = await this.bus.requestName('org.bluez', 4 /* DO_NOT_QUEUE */);
    if (reply !== 1 && reply !== 4) {
      throw new Error(`BluezSimulator: org.bluez is already owned on this bus (RequestName reply ${reply})`);
    }
  }

  /** The unique name of this connection. */
  get uniqueName(): string {
    return (this.bus as unknown as { name: string | null }).name ?? '';
  }

  has(path: string): boolean {
    return this.objects.has(path);
  }

  /** Every exported object path, in export order. */
  paths(): string[] {
    return [...this.objects.keys()];
  }

  /**
   * Runs `fn` and holds back the InterfacesRemoved signals it causes (the objects themselves are
   * gone at once); the returned function sends them. gdbus unregisters an object immediately and
   * announces it from its idle handler. Held signals are also sent before any later
   * InterfacesAdded, so a client never sees an object re-added before its removal.
   */
  holdRemovals(fn: () => void): () => void {
    const previous = this.holding;
    const held: (() => void)[] = [];
    this.holding = held;
    try {
      fn();
    } finally {
      this.holding = previous;
    }
    for (const emit of held) this.heldRemovals.add(emit);
    return () => {
      for (const emit of held) {
        if (this.heldRemovals.delete(emit)) emit();
      }
    };
  }

  private flushHeldRemovals(): void {
    const all = [...this.heldRemovals];
    this.heldRemovals.clear();
    for (const emit of all) emit();
  }

  /** Exports an object; announces it with InterfacesAdded unless `silent`. */
  add(obj: SimObject, silent = false): void {
    if (this.objects.has(obj.path)) throw new Error(`object ${obj.path} already exported`);
    this.flushHeldRemovals();
    this.objects.set(obj.path, obj);
    for (const iface of obj.interfaces) this.bus.export(obj.path, iface);
    if (!silent && !this.closed) {
      const body: Record<string, Record<string, dbus.Variant>> = {};
      body[INTROSPECTABLE] = {};
      for (const iface of obj.interfaces) body[iface.spec.name] = variantsOf(iface);
      body[PROPERTIES] = {};
      this.root.emitSignal('InterfacesAdded', [obj.path, body]);
    }
  }

  /** Removes an object; announces it with InterfacesRemoved unless `silent`. */
  remove(path: string, silent = false): void {
    const obj = this.objects.get(path);
    if (!obj) return;
    this.objects.delete(path);
    this.bus.unexport(path, undefined as unknown as dbus.interface.Interface);
    if (!silent && !this.closed) {
      const names = [INTROSPECTABLE, ...obj.interfaces.map((i) => i.spec.name), PROPERTIES];
      const emit = () => {
        if (!this.closed) this.root.emitSignal('InterfacesRemoved', [path, names]);
      };
      if (this.holding) this.holding.push(emit);
      else {
        this.flushHeldRemovals();
        emit();
      }
    }
  }

  /** Emits PropertiesChanged; names whose value is now undefined go to the invalidated list. */
  changed(iface: ExportedInterface, names: string[]): void {
    if (this.closed) return;
    const changed: Record<string, unknown> = {};
    const invalidated: string[] = [];
    for (const n of names) {
      const value = iface.backend.get(n);
      if (value === undefined) invalidated.push(n);
      else changed[n] = value;
    }
    dbus.interface.Interface.emitPropertiesChanged(iface, changed, invalidated);
  }

  /**
   * Runs `fn` right after the reply (or error) to `call` has been written, before anything else
   * the simulator sends: for bluetoothd steps that follow their reply on the wire (RemoveDevice
   * answers, then the Device1 object goes). Dropped when the connection closes first.
   */
  afterReply(call: string, fn: () => void): void {
    this.replyHooks.set(call, fn);
  }

  /**
   * From now on no call is answered (pending and new ones alike); signals still go out. For a
   * bluetoothd that is shutting down: its callers get NoReply from the bus when it leaves.
   */
  stopAnswering(): void {
    this.silentReplies = true;
  }

  /** Stops answering method calls for `ms`; the calls queue up and are answered afterwards. */
  stall(ms: number): void {
    this.stalledUntil = Math.max(this.stalledUntil, this.now() + ms);
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => this.endStall(), Math.max(0, this.stalledUntil - this.now()));
  }

  endStall(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    this.stalledUntil = 0;
    const queue = this.stallQueue;
    this.stallQueue = [];
    const conn = (this.bus as unknown as InternalBus)._connection;
    for (const m of queue) if (!this.closed) conn.emit('message', m);
  }

  /** Calls swallowed by the `hang` fault so far (never answered). */
  get hungCalls(): number {
    return this.hung.length;
  }

  private front(m: RawMessage): boolean {
    if (m.type !== METHOD_CALL) return false;
    const path = m.path ?? '';
    const iface = m.interface ?? '';
    const member = m.member ?? '';
    // A call re-dispatched after a stall was logged when it first arrived.
    if ((m as { __simLogged?: boolean }).__simLogged !== true) {
      const call: SimCall = { at: this.now(), sender: m.sender ?? '', path, interface: iface, member };
      this.log.push(call);
      this.pending.set(`${m.sender}/${m.serial}`, call);
      (m as { __simLogged?: boolean }).__simLogged = true;
    }
    if (this.stalledUntil > this.now()) {
      this.stallQueue.push(m);
      return true;
    }
    if (iface === INTROSPECTABLE || iface === PEER) return false;
    if (this.hangRule(m)) {
      this.hung.push(m);
      return true;
    }
    if (path !== '/' && !this.objects.has(path)) {
      this.reply(m, BluezErrors.UnknownObject, `No such object path '${path}'`);
      return true;
    }
    if (iface === PROPERTIES) {
      this.properties(m);
      return true;
    }
    this.currentSender = m.sender ?? '';
    this.currentCall = `${m.sender}/${m.serial}`;
    return false;
  }

  private reply(m: RawMessage, name: string, text: string): void {
    (this.bus as unknown as InternalBus).send(Msg.newError(m, name, text));
  }

  private ok(m: RawMessage, signature = '', body: unknown[] = []): void {
    (this.bus as unknown as InternalBus).send(Msg.newMethodReturn(m, signature, body));
  }

  private findInterface(path: string, name: unknown): ExportedInterface | undefined {
    return this.objects.get(path)?.interfaces.find((i) => i.spec.name === name);
  }

  private properties(m: RawMessage): void {
    const path = m.path ?? '';
    const [ifaceName, propName, value] = m.body as [unknown, unknown, unknown];
    if (m.member === 'GetAll' && m.signature === 's') {
      const iface = this.findInterface(path, ifaceName);
      // as gdbus/object.c properties_get_all does
      if (!iface) return this.reply(m, BluezErrors.InvalidArgs, `No such interface '${String(ifaceName)}'`);
      return this.ok(m, 'a{sv}', [variantsOf(iface)]);
    }
    if ((m.member === 'Get' && m.signature === 'ss') || (m.member === 'Set' && m.signature === 'ssv')) {
      const iface = this.findInterface(path, ifaceName);
      if (!iface) return this.reply(m, BluezErrors.InvalidArgs, `No such interface '${String(ifaceName)}'`);
      const prop = iface.spec.properties.find((p) => p.name === propName);
      const current = prop ? iface.backend.get(prop.name) : undefined;
      if (!prop || (m.member === 'Get' && current === undefined)) {
        return this.reply(m, BluezErrors.InvalidArgs, `No such property '${String(propName)}'`);
      }
      if (m.member === 'Get') return this.ok(m, 'v', [new dbus.Variant(prop.signature, current)]);
      if (prop.access !== 'readwrite' || !iface.backend.set) {
        return this.reply(m, BluezErrors.PropertyReadOnly, `Property '${prop.name}' is not writable`);
      }
      const v = value as dbus.Variant;
      if (!(v instanceof dbus.Variant) || v.signature !== prop.signature) {
        return this.reply(m, BluezErrors.InvalidArgs, `Invalid arguments in method call`);
      }
      Promise.resolve()
        .then(() => iface.backend.set?.(prop.name, v.value))
        .then(
          () => this.ok(m),
          (e: unknown) => {
            if (e instanceof dbus.DBusError) this.reply(m, e.type, e.text);
            else this.reply(m, BluezErrors.Failed, String(e));
          },
        );
      return;
    }
    this.reply(
      m,
      'org.freedesktop.DBus.Error.UnknownMethod',
      `Method "${m.member}" with signature "${m.signature ?? ''}" on interface "${PROPERTIES}" doesn't exist`,
    );
  }

  private managedObjects(): Record<string, Record<string, Record<string, dbus.Variant>>> {
    const out: Record<string, Record<string, Record<string, dbus.Variant>>> = {};
    for (const obj of this.objects.values()) {
      const entry: Record<string, Record<string, dbus.Variant>> = { [INTROSPECTABLE]: {} };
      for (const iface of obj.interfaces) entry[iface.spec.name] = variantsOf(iface);
      entry[PROPERTIES] = {};
      out[obj.path] = entry;
    }
    return out;
  }

  /**
   * Leaves the bus. Calls still waiting (hung, stalled, slow) are never answered
   * by us; the bus daemon answers them with NoReply, as when bluetoothd exits.
   */
  close(): void {
    if (this.closed) return;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallQueue = [];
    this.hung.length = 0;
    this.pending.clear();
    this.replyHooks.clear();
    this.heldRemovals.clear();
    this.closed = true;
    this.bus.disconnect();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
