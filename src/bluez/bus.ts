/**
 * One shared D-Bus connection per address, with the guarantees dbus-next lacks:
 * - every call has a deadline and takes an AbortSignal (dbus-next has no call timeout);
 * - when the stream dies every pending call is rejected with {@link BusLostError}
 *   (dbus-next leaves them pending forever, docs/bluez-facts.md);
 * - the `error` event is always handled (an unhandled one kills the process: matter-js#800);
 * - match rules are refcounted here and really removed with RemoveMatch (dbus-next's refcount
 *   has swapped hasOwnProperty arguments and never sends RemoveMatch, dbus-next#125);
 * - the connection is re-established with backoff and match rules are re-added.
 */
import dbus from 'dbus-next';
import type { Message as DBusMessage, MessageBus } from 'dbus-next';
import { TypedEmitter } from './emitter.js';
import { BusLostError, DBusTimeoutError, toBluezError } from './errors.js';
import { validateSignal, validateTimeoutMs } from './validate.js';

/** The default system bus address (what dbus-next's systemBus() would use). */
export function defaultBusAddress(): string {
  return process.env.DBUS_SYSTEM_BUS_ADDRESS ?? 'unix:path=/var/run/dbus/system_bus_socket';
}

/**
 * A D-Bus authentication mechanism (D-Bus specification, "Authentication Protocol").
 * `EXTERNAL` proves the peer's uid through the unix socket's credentials; `ANONYMOUS` proves
 * nothing and is what a bus on TCP offers when its config has `<allow_anonymous/>`;
 * `DBUS_COOKIE_SHA1` reads a cookie from `~/.dbus-keyrings`.
 */
export type DBusAuthMethod = 'EXTERNAL' | 'DBUS_COOKIE_SHA1' | 'ANONYMOUS';

/** Every mechanism dbus-next speaks, in its own default order. */
export const DBUS_AUTH_METHODS: readonly DBusAuthMethod[] = Object.freeze([
  'EXTERNAL',
  'DBUS_COOKIE_SHA1',
  'ANONYMOUS',
]);

/**
 * The mechanisms tried when none are given, chosen by the address's transport:
 * - `tcp:` and `nonce-tcp:`: `ANONYMOUS` only. A TCP peer has no unix credentials, so EXTERNAL is
 *   always refused, and dbus-next's DBUS_COOKIE_SHA1 reads the server's REJECTED as a challenge and
 *   fails on a missing keyring instead of moving on, so ANONYMOUS would never be reached;
 * - anything else (`unix:`): dbus-next's order, EXTERNAL first (what the system bus accepts).
 * Pass `authMethods` explicitly for a TCP bus that demands a cookie.
 */
export function defaultAuthMethods(address: string): readonly DBusAuthMethod[] {
  const transport = address.slice(0, address.indexOf(':')).toLowerCase();
  return transport === 'tcp' || transport === 'nonce-tcp' ? ['ANONYMOUS'] : DBUS_AUTH_METHODS;
}

/**
 * Validates an `authMethods` option: a non-empty array of distinct {@link DBusAuthMethod}s.
 * @throws TypeError when not an array of strings, RangeError for an unknown, repeated or missing mechanism
 */
export function validateAuthMethods(value: unknown, field = 'authMethods'): readonly DBusAuthMethod[] {
  if (!Array.isArray(value)) {
    throw new TypeError(`${field} must be an array like ["ANONYMOUS"], got ${typeof value}`);
  }
  if (value.length === 0) {
    throw new RangeError(`${field} must name at least one of ${DBUS_AUTH_METHODS.join(', ')}`);
  }
  const seen = new Set<DBusAuthMethod>();
  for (const m of value as unknown[]) {
    if (typeof m !== 'string') throw new TypeError(`${field} entries must be strings, got ${typeof m}`);
    const method = DBUS_AUTH_METHODS.find((known) => known === m);
    if (method === undefined) {
      throw new RangeError(
        `${field}: unknown mechanism ${JSON.stringify(m)} (known: ${DBUS_AUTH_METHODS.join(', ')})`,
      );
    }
    if (seen.has(method)) throw new RangeError(`${field} names ${method} twice`);
    seen.add(method);
  }
  return [...seen];
}

/** A method call to send. */
export interface MethodCall {
  destination: string;
  path: string;
  interface: string;
  member: string;
  /** D-Bus signature of `body`; omit for no arguments. */
  signature?: string;
  body?: unknown[];
}

/** Deadline, cancellation and context of one call. */
export interface BusCallOptions {
  /** Deadline in ms (required here; the operation layer supplies the defaults of docs/defaults.md). */
  timeoutMs: number;
  signal?: AbortSignal;
  /** For error messages and error fields. */
  adapter?: string;
  device?: string;
}

/** A received D-Bus signal, as handed to `message` listeners. */
export interface SignalMessage {
  /**
   * Arrival order on this connection (shared with replies, see {@link SharedBus.callOrdered}): lets the
   * mirror tell signals sent before a GetManagedObjects reply from those sent after it.
   */
  readonly seq: number;
  readonly sender: string;
  readonly path: string;
  readonly interface: string;
  readonly member: string;
  readonly body: readonly unknown[];
}

/** Events of a {@link SharedBus}. */
export type SharedBusEvents = {
  /** The connection is up (Hello answered, match rules re-added). `uniqueName` is our bus name. */
  connected: (uniqueName: string) => void;
  /** The connection went away; every pending call has been rejected. A reconnect follows. */
  lost: (cause: unknown) => void;
  /** A signal arrived (only those our match rules let through, plus broadcasts to us). */
  signal: (msg: SignalMessage) => void;
};

/** Connection state of a {@link SharedBus}. */
export type BusState = 'connecting' | 'connected' | 'lost' | 'closed';

/** The parts of dbus-next internals we rely on, checked at runtime before use. */
interface MessageBusInternals {
  _connection?: {
    stream?: NodeJS.EventEmitter & StreamState & { destroy?: () => void };
    on?: (ev: string, fn: () => void) => void;
  };
  _methodReturnHandlers?: Record<number, unknown>;
  name: string | null;
}

/** The stream fields we read to tell a dead connection from a harmless error event. */
interface StreamState {
  writable?: boolean;
  destroyed?: boolean;
}

interface PendingCall {
  reject(err: unknown): void;
}

const METHOD_RETURN_TYPE = 2;
const ERROR_TYPE = 3;
const SIGNAL_TYPE = 4;
const BACKOFF_START_MS = 100;
const BACKOFF_MAX_MS = 5000;
const CLOSE_WAIT_MS = 1000;

/**
 * A refcounted, self-healing connection to one bus address. Get one with {@link acquireBus};
 * give it back with {@link SharedBus.release}.
 */
export class SharedBus extends TypedEmitter<SharedBusEvents> {
  /** The bus address. */
  readonly address: string;
  /** The authentication mechanisms tried, in order. */
  readonly authMethods: readonly DBusAuthMethod[];
  /** @internal the registry key (address and mechanisms) */
  readonly key: string;
  private bus: MessageBus | undefined;
  private generation = 0;
  private stateValue: BusState = 'connecting';
  private uniqueNameValue: string | undefined;
  private readonly pending = new Map<number, PendingCall>();
  private readonly matches = new Map<string, number>();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private backoffMs = BACKOFF_START_MS;
  private refs = 0;
  private lastCause: unknown;
  private rxSeq = 0;
  private readonly replySeqs = new Map<number, number>();
  /** Number of method calls we have sent (including AddMatch/RemoveMatch). */
  sentCalls = 0;

  /** @internal use {@link acquireBus} */
  constructor(address: string, authMethods: readonly DBusAuthMethod[] = defaultAuthMethods(address)) {
    super();
    this.address = address;
    this.authMethods = authMethods;
    this.key = registryKey(address, authMethods);
    this.connect();
  }

  /** Current state. */
  get state(): BusState {
    return this.stateValue;
  }

  /** Our unique name on the bus (e.g. `:1.42`), when connected. */
  get uniqueName(): string | undefined {
    return this.uniqueNameValue;
  }

  /** Number of calls awaiting a reply (tests check it returns to 0). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Active match rules with their refcounts (tests check it is empty after close). */
  get matchRules(): ReadonlyMap<string, number> {
    return this.matches;
  }

  /**
   * The current dbus-next MessageBus (for node-ble). It is replaced after a loss.
   * @throws BusLostError when closed
   */
  messageBus(): MessageBus {
    if (this.stateValue === 'closed' || !this.bus) throw new BusLostError(`bus ${this.address} is closed`);
    return this.bus;
  }

  /** @internal */
  retain(): void {
    this.refs += 1;
  }

  /**
   * Gives back one reference; the last one closes the connection (the daemon then drops every
   * match rule and the connection itself).
   */
  async release(): Promise<void> {
    if (this.refs <= 0) return;
    this.refs -= 1;
    if (this.refs > 0) return;
    registry.delete(this.key);
    await this.close();
  }

  /**
   * Resolves when the connection is up.
   * @throws DBusTimeoutError-like TimeoutError at the deadline, `signal.reason` on abort, BusLostError when closed
   */
  ready(options: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    const timeoutMs = validateTimeoutMs(options.timeoutMs, 'timeoutMs');
    const signal = validateSignal(options.signal);
    if (this.stateValue === 'connected') return Promise.resolve();
    if (this.stateValue === 'closed')
      return Promise.reject(new BusLostError(`bus ${this.address} is closed`));
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const done = (err?: unknown): void => {
        clearTimeout(timer);
        offConnected();
        signal?.removeEventListener('abort', onAbort);
        this.closeWaiters.delete(onClosed);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = (): void => done(signal?.reason);
      const onClosed = (): void => done(new BusLostError(`bus ${this.address} was closed`));
      const timer = setTimeout(
        () =>
          done(
            new BusLostError(`could not connect to D-Bus at ${this.address} within ${timeoutMs} ms`, {
              cause: this.lastCause,
            }),
          ),
        timeoutMs,
      );
      const offConnected = this.on('connected', () => done());
      this.closeWaiters.add(onClosed);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private readonly closeWaiters = new Set<() => void>();

  /**
   * Sends a method call and resolves with the reply body. Never stays pending: it settles on the
   * reply, at the deadline ({@link DBusTimeoutError} naming member and path), on abort
   * (`signal.reason`), or when the connection dies ({@link BusLostError}).
   * D-Bus error replies are converted into the typed errors of errors.ts.
   */
  call(spec: MethodCall, options: BusCallOptions): Promise<unknown[]> {
    return this.callOrdered(spec, options).then((r) => r.body);
  }

  /**
   * Like {@link SharedBus.call}, and also returns the reply's arrival order (`seq`), comparable with
   * {@link SignalMessage.seq}. dbus-next delivers a reply and the signals behind it in the same
   * tick, before any promise continuation runs, so arrival order cannot be recovered later.
   */
  callOrdered(spec: MethodCall, options: BusCallOptions): Promise<{ body: unknown[]; seq: number }> {
    const timeoutMs = validateTimeoutMs(options.timeoutMs, 'timeoutMs');
    const signal = validateSignal(options.signal);
    const member = `${spec.interface}.${spec.member}`;
    const ctx = { member, path: spec.path, adapter: options.adapter, device: options.device };
    if (signal?.aborted) return Promise.reject(signal.reason);
    const bus = this.bus;
    if (this.stateValue === 'closed' || this.stateValue === 'lost' || !bus) {
      return Promise.reject(
        new BusLostError(
          `${member} on ${spec.path}: D-Bus connection to ${this.address} is ${this.stateValue}`,
          {
            adapter: options.adapter,
            device: options.device,
            cause: this.lastCause,
          },
        ),
      );
    }
    const serial = bus.newSerial();
    const msg = new dbus.Message({
      destination: spec.destination,
      path: spec.path,
      interface: spec.interface,
      member: spec.member,
      signature: spec.signature ?? '',
      body: spec.body ?? [],
      serial,
    });
    return new Promise<{ body: unknown[]; seq: number }>((resolve, reject) => {
      let settled = false;
      let seq = 0;
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.pending.delete(serial);
        seq = this.replySeqs.get(serial) ?? this.rxSeq;
        this.replySeqs.delete(serial);
        return true;
      };
      // A call we give up on must not leave dbus-next's reply handler behind (a late reply would
      // otherwise resolve a promise nobody awaits, and the handler table would grow).
      const forget = (): void => {
        const internals = bus as unknown as MessageBusInternals;
        if (internals._methodReturnHandlers) delete internals._methodReturnHandlers[serial];
      };
      const onAbort = (): void => {
        if (!settle()) return;
        forget();
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        if (!settle()) return;
        forget();
        reject(
          new DBusTimeoutError(member, spec.path, timeoutMs, {
            adapter: options.adapter,
            device: options.device,
          }),
        );
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(serial, {
        reject: (err) => {
          if (!settle()) return;
          forget();
          reject(err);
        },
      });
      this.sentCalls += 1;
      bus.call(msg).then(
        (reply: DBusMessage | null) => {
          if (!settle()) return;
          resolve({ body: (reply?.body ?? []) as unknown[], seq });
        },
        (err: unknown) => {
          if (!settle()) return;
          reject(
            this.stateValue === 'connected'
              ? toBluezError(err, ctx)
              : new BusLostError(`${member} on ${spec.path}: ${String(err)}`, { cause: err }),
          );
        },
      );
    });
  }

  /**
   * Adds a match rule (refcounted: the daemon sees AddMatch only for the first user).
   * Rules survive reconnects: they are re-added on the new connection.
   */
  async addMatch(rule: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    const count = this.matches.get(rule) ?? 0;
    this.matches.set(rule, count + 1);
    if (count > 0 || this.stateValue !== 'connected') return;
    try {
      await this.call(busDaemonCall('AddMatch', rule), options);
    } catch (err) {
      if (!(err instanceof BusLostError)) {
        this.dropMatchRef(rule);
        throw err;
      }
      // Lost bus: the rule stays registered and is re-added on reconnect.
    }
  }

  /** Drops one reference to a rule; the last one sends RemoveMatch (bounded; errors ignored). */
  async removeMatch(rule: string, options: { timeoutMs: number }): Promise<void> {
    if (!this.dropMatchRef(rule)) return;
    if (this.stateValue !== 'connected') return; // the daemon forgot it with the old connection
    try {
      await this.call(busDaemonCall('RemoveMatch', rule), options);
    } catch {
      // A lost connection took the rule with it; a timed-out RemoveMatch is not worth failing a close.
    }
  }

  private dropMatchRef(rule: string): boolean {
    const count = this.matches.get(rule);
    if (count === undefined) return false;
    if (count > 1) {
      this.matches.set(rule, count - 1);
      return false;
    }
    this.matches.delete(rule);
    return true;
  }

  private connect(): void {
    const generation = ++this.generation;
    this.stateValue = 'connecting';
    let bus: MessageBus;
    try {
      bus = dbus.sessionBus({ busAddress: this.address, authMethods: [...this.authMethods] });
    } catch (err) {
      // Malformed address or unsupported transport: the same path as a failed connect.
      this.bus = undefined;
      this.onLost(generation, err);
      return;
    }
    this.bus = bus;
    const internals = bus as unknown as MessageBusInternals;
    const stream = internals._connection?.stream;
    // Always handled: dbus-next emits 'error' for socket, auth and write-after-close failures, and
    // also for harmless ones: a proxy's failed AddMatch (node-ble on this connection, e.g. the
    // daemon's per-connection rule limit) is re-emitted as 'error'. Only a dead or never-established
    // connection counts as lost; tearing down a healthy one would reject every pending call.
    // A socket error destroys the socket, so its 'close' (below) still reports the loss.
    bus.on('error', (err: unknown) => {
      const usable = stream?.writable === true && stream.destroyed !== true;
      if (generation === this.generation && this.stateValue === 'connected' && usable) {
        this.lastCause = err;
        return;
      }
      this.onLost(generation, err);
    });
    stream?.on('close', () => this.onLost(generation, new Error('D-Bus socket closed')));
    bus.on('message', (msg: DBusMessage) => {
      if (generation !== this.generation) return;
      const seq = ++this.rxSeq;
      if (msg.type === METHOD_RETURN_TYPE || msg.type === ERROR_TYPE) {
        const serial = Number(msg.replySerial);
        if (this.pending.has(serial)) this.replySeqs.set(serial, seq);
        return;
      }
      if (msg.type !== SIGNAL_TYPE) return;
      this.emit('signal', {
        seq,
        sender: msg.sender,
        path: msg.path,
        interface: msg.interface,
        member: msg.member,
        body: msg.body as unknown[],
      });
    });
    bus.on('connect', () => {
      if (generation !== this.generation) return;
      void this.onConnected(generation, internals.name ?? '');
    });
  }

  private async onConnected(generation: number, uniqueName: string): Promise<void> {
    this.stateValue = 'connected';
    this.uniqueNameValue = uniqueName;
    this.backoffMs = BACKOFF_START_MS;
    // Re-add the rules of our users: a new connection starts with none.
    for (const rule of this.matches.keys()) {
      try {
        await this.call(busDaemonCall('AddMatch', rule), { timeoutMs: 5000 });
      } catch {
        if (generation !== this.generation) return; // lost again; the next connect retries
      }
    }
    if (generation !== this.generation || this.stateValue !== 'connected') return;
    this.emit('connected', uniqueName);
  }

  private onLost(generation: number, cause: unknown): void {
    if (generation !== this.generation || this.stateValue === 'closed') return;
    const wasConnected = this.stateValue === 'connected';
    this.generation += 1; // late events of the dead connection are ignored from now on
    this.stateValue = 'lost';
    this.lastCause = cause;
    this.uniqueNameValue = undefined;
    // Disposal is best effort: the connection is already gone, nothing can act on its failure.
    this.disposeBus().catch(() => {});
    this.rejectAll(new BusLostError(`D-Bus connection to ${this.address} lost: ${String(cause)}`, { cause }));
    if (wasConnected) this.emit('lost', cause);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.stateValue === 'closed') return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.stateValue === 'lost') this.connect();
    }, delay);
  }

  private rejectAll(err: unknown): void {
    for (const p of [...this.pending.values()]) p.reject(err);
    this.pending.clear();
  }

  private disposeBus(): Promise<void> {
    const bus = this.bus;
    this.bus = undefined;
    if (!bus) return Promise.resolve();
    const stream = (bus as unknown as MessageBusInternals)._connection?.stream;
    // Keep a no-op error listener: late socket errors of a dead connection must not crash the process.
    bus.removeAllListeners('message');
    bus.removeAllListeners('connect');
    bus.on('error', () => undefined);
    return new Promise<void>((resolve) => {
      if (!stream || stream.destroyed) {
        resolve();
        return;
      }
      const timer = setTimeout(() => {
        stream.destroy?.();
        resolve();
      }, CLOSE_WAIT_MS);
      stream.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      try {
        bus.disconnect();
      } catch {
        stream.destroy?.();
      }
    });
  }

  private async close(): Promise<void> {
    if (this.stateValue === 'closed') return;
    this.stateValue = 'closed';
    this.generation += 1;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.rejectAll(new BusLostError(`D-Bus connection to ${this.address} was closed`));
    for (const waiter of [...this.closeWaiters]) waiter();
    this.matches.clear();
    this.removeAllListeners();
    await this.disposeBus();
  }
}

function busDaemonCall(member: 'AddMatch' | 'RemoveMatch', rule: string): MethodCall {
  return {
    destination: 'org.freedesktop.DBus',
    path: '/org/freedesktop/DBus',
    interface: 'org.freedesktop.DBus',
    member,
    signature: 's',
    body: [rule],
  };
}

const registry = new Map<string, SharedBus>();

function registryKey(address: string, authMethods: readonly DBusAuthMethod[]): string {
  return `${address}\n${authMethods.join(',')}`;
}

/**
 * The shared connection for `address` (default: the system bus) authenticated with `authMethods`
 * (default: {@link defaultAuthMethods} of the address), created on first use. Connections are
 * shared per address and mechanism list. Each acquire must be paired with one `release()`.
 * @throws TypeError/RangeError for a malformed address or mechanism list (before any I/O)
 */
export function acquireBus(
  address: string = defaultBusAddress(),
  authMethods?: readonly DBusAuthMethod[],
): SharedBus {
  if (typeof address !== 'string' || address.length === 0) {
    throw new TypeError('busAddress must be a non-empty D-Bus address string');
  }
  if (!/^[a-zA-Z]+:/.test(address)) {
    throw new RangeError(
      `busAddress must be a D-Bus address like "unix:path=/run/dbus/system_bus_socket", got ${JSON.stringify(address)}`,
    );
  }
  const methods = authMethods === undefined ? defaultAuthMethods(address) : validateAuthMethods(authMethods);
  const key = registryKey(address, methods);
  let bus = registry.get(key);
  if (!bus) {
    bus = new SharedBus(address, methods);
    registry.set(key, bus);
  }
  bus.retain();
  return bus;
}
