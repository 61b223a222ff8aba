/**
 * One shared D-Bus connection per address, with the guarantees dbus-next lacks:
 * - every call has a deadline and takes an AbortSignal (dbus-next has no call timeout);
 * - when the stream dies every pending call is rejected with {@link BusLostError}
 *   (dbus-next leaves them pending forever, docs/bluez-facts.md);
 * - the `error` event is always handled (an unhandled one kills the process: matter-js#800);
 * - match rules are refcounted here and really removed with RemoveMatch (dbus-next's refcount
 *   has swapped hasOwnProperty arguments and never sends RemoveMatch, dbus-next#125);
 * - the connection is re-established with backoff and match rules are re-added;
 * - calls awaiting a reply are bounded per connection (`maxInFlightCalls`, src/bluez/call-gate.ts),
 *   node-ble's calls on this connection included, with fair queueing per device.
 */
import dbus from 'dbus-next';
import type { Message as DBusMessage, MessageBus } from 'dbus-next';
import {
  CallGate,
  DEFAULT_MAX_IN_FLIGHT_CALLS,
  fairnessKey,
  validateMaxInFlightCalls,
  type CallPriority,
  type GateTicket,
} from './call-gate.js';
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
  /**
   * `control` for the calls the mirror's view depends on (its GetManagedObjects resync): served
   * before queued normal calls and allowed into slots normal calls leave free. Default `normal`.
   */
  priority?: CallPriority;
}

/** Options of {@link acquireBus} that shape the connection's call bound. */
export interface BusLimits {
  /** Bound on calls awaiting a reply (default {@link DEFAULT_MAX_IN_FLIGHT_CALLS}). */
  maxInFlightCalls?: number;
  /**
   * Deadline of a call made on the MessageBus directly (node-ble's calls), which carry none of
   * their own: queued and in flight together. Default 25 000 (the D-Bus reference deadline).
   */
  foreignCallTimeoutMs?: number;
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
  /** Owner by name; dbus-next records every destination that answered a call, unique names too. */
  _nameOwners?: Record<string, string>;
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

/** The bus daemon itself: it answers AddMatch, GetNameOwner… at once, holding no pending-reply slot. */
const BUS_DAEMON = 'org.freedesktop.DBus';
const LIMITS_EXCEEDED = 'org.freedesktop.DBus.Error.LimitsExceeded';
/** How often one call is re-sent after dbus-daemon refused it for the reply limit. */
const MAX_REFUSALS = 5;
/** dbus-next's flag (D-Bus specification, message flags). */
const NO_REPLY_EXPECTED = 1;
const DEFAULT_FOREIGN_CALL_TIMEOUT_MS = 25_000;
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
  /** dbus-next's own `call` of the current MessageBus (its `call` property is replaced by the gated one). */
  private rawCall: ((msg: DBusMessage) => Promise<DBusMessage | null>) | undefined;
  private gate: CallGate;
  private maxInFlight: number;
  private foreignTimeoutMs: number;
  private callIds = 0;
  /** Serials of our calls on the wire (replies to them get an arrival seq). */
  private readonly liveSerials = new Set<number>();
  /**
   * Calls given up on (deadline, abort) while on the wire, by serial, with the gate whose slot they
   * hold. dbus-daemon keeps counting them toward max_replies_per_connection until the callee answers
   * or leaves the bus (its stock reply_timeout is "never": dbus's bus/config-parser.c), so their slot
   * is freed only when that late reply or error arrives, or with the connection.
   */
  private readonly orphans = new Map<number, CallGate>();
  private generation = 0;
  private stateValue: BusState = 'connecting';
  private uniqueNameValue: string | undefined;
  /** Every call not yet settled, queued or on the wire, ours and node-ble's: rejected on loss. */
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
  /** LimitsExceeded refusals dbus-daemon sent this connection (each is retried or reported typed). */
  limitsExceeded = 0;
  /** Most calls awaiting a reply at once (the bound holds it at or under {@link SharedBus.maxInFlightCalls}). */
  peakInFlight = 0;

  /** @internal use {@link acquireBus} */
  constructor(
    address: string,
    authMethods: readonly DBusAuthMethod[] = defaultAuthMethods(address),
    limits: BusLimits = {},
  ) {
    super();
    this.address = address;
    this.authMethods = authMethods;
    this.key = registryKey(address, authMethods);
    this.maxInFlight = limits.maxInFlightCalls ?? DEFAULT_MAX_IN_FLIGHT_CALLS;
    this.foreignTimeoutMs = limits.foreignCallTimeoutMs ?? DEFAULT_FOREIGN_CALL_TIMEOUT_MS;
    this.gate = new CallGate(this.maxInFlight);
    this.connect();
  }

  /**
   * Applies a later user's limits to the shared connection: the bound only goes down (the
   * strictest user wins), the deadline of direct MessageBus calls only up.
   * @internal
   */
  applyLimits(limits: BusLimits): void {
    if (limits.maxInFlightCalls !== undefined && limits.maxInFlightCalls < this.maxInFlight) {
      this.maxInFlight = limits.maxInFlightCalls;
      this.gate.lowerLimit(this.maxInFlight);
    }
    if (limits.foreignCallTimeoutMs !== undefined && limits.foreignCallTimeoutMs > this.foreignTimeoutMs) {
      this.foreignTimeoutMs = limits.foreignCallTimeoutMs;
    }
  }

  /** The bound on calls awaiting a reply on this connection. */
  get maxInFlightCalls(): number {
    return this.maxInFlight;
  }

  /** Calls on the wire now (bounded by {@link SharedBus.maxInFlightCalls}). */
  get inFlightCount(): number {
    return this.gate.inFlight;
  }

  /** Calls waiting for a slot now. */
  get queuedCount(): number {
    return this.gate.queued;
  }

  /** Current state. */
  get state(): BusState {
    return this.stateValue;
  }

  /** Our unique name on the bus (e.g. `:1.42`), when connected. */
  get uniqueName(): string | undefined {
    return this.uniqueNameValue;
  }

  /** Number of calls not yet settled, queued ones included (tests check it returns to 0). */
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
    const rawCall = this.rawCall;
    if (this.stateValue === 'closed' || this.stateValue === 'lost' || !bus || !rawCall) {
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
    const gate = this.gate;
    const generation = this.generation;
    const priority = options.priority ?? 'normal';
    // Adapter1.RemoveDevice names its device in the body: it queues with that device's calls.
    const target = spec.member === 'RemoveDevice' ? spec.body?.[0] : undefined;
    const key = fairnessKey(typeof target === 'string' ? target : spec.path);
    const gated = spec.destination !== BUS_DAEMON;
    const id = ++this.callIds;
    return new Promise<{ body: unknown[]; seq: number }>((resolve, reject) => {
      let settled = false;
      let seq = 0;
      let serial: number | undefined;
      let ticket: GateTicket | undefined;
      let holdsSlot = false;
      let refusals = 0;
      // A call we give up on must not leave dbus-next's reply handler behind (a late reply would
      // otherwise resolve a promise nobody awaits, and the handler table would grow).
      const unwire = (forget: boolean): void => {
        if (serial === undefined) return;
        if (forget) {
          const internals = bus as unknown as MessageBusInternals;
          if (internals._methodReturnHandlers) delete internals._methodReturnHandlers[serial];
        }
        this.liveSerials.delete(serial);
        this.replySeqs.delete(serial);
        serial = undefined;
      };
      const freeSlot = (): void => {
        if (!holdsSlot) return;
        holdsSlot = false;
        gate.done();
      };
      const settle = (forget: boolean): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.pending.delete(id);
        ticket?.cancel(); // still queued: it is never sent
        seq = (serial === undefined ? undefined : this.replySeqs.get(serial)) ?? this.rxSeq;
        if (forget && holdsSlot && serial !== undefined) {
          // Given up on while on the wire: dbus-daemon still counts it until the reply comes.
          holdsSlot = false;
          this.orphan(serial, gate);
        }
        unwire(forget);
        freeSlot();
        return true;
      };
      const onAbort = (): void => {
        if (!settle(true)) return;
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        const queued = ticket !== undefined && !ticket.admitted;
        if (!settle(true)) return;
        const err = new DBusTimeoutError(member, spec.path, timeoutMs, {
          adapter: options.adapter,
          device: options.device,
        });
        if (queued) {
          err.message =
            `${member} on ${spec.path} waited ${timeoutMs} ms for one of the ${gate.limit} call slots ` +
            `of the D-Bus connection (maxInFlightCalls) and was never sent`;
        }
        reject(err);
      }, timeoutMs);
      const send = (): void => {
        if (settled) return;
        holdsSlot = gated;
        if (gate.inFlight > this.peakInFlight) this.peakInFlight = gate.inFlight;
        const wireSerial = bus.newSerial();
        serial = wireSerial;
        this.liveSerials.add(wireSerial);
        const msg = new dbus.Message({
          destination: spec.destination,
          path: spec.path,
          interface: spec.interface,
          member: spec.member,
          signature: spec.signature ?? '',
          body: spec.body ?? [],
          serial: wireSerial,
        });
        this.sentCalls += 1;
        rawCall(msg).then(
          (reply: DBusMessage | null) => {
            if (serial !== wireSerial || !settle(false)) return;
            resolve({ body: (reply?.body ?? []) as unknown[], seq });
          },
          (err: unknown) => {
            if (serial !== wireSerial || settled) return;
            if (isLimitsExceeded(err)) {
              this.limitsExceeded += 1;
              // The daemon never delivered it (bus/connection.c refuses before forwarding), so it is
              // safe to send again, whatever the method: after half the calls in flight are answered.
              if (gated && refusals < MAX_REFUSALS && generation === this.generation) {
                refusals += 1;
                unwire(false);
                gate.refused();
                freeSlot();
                ticket = gate.submit(key, priority, send, true);
                return;
              }
            }
            if (!settle(false)) return;
            reject(
              this.stateValue === 'connected'
                ? toBluezError(err, ctx)
                : new BusLostError(`${member} on ${spec.path}: ${String(err)}`, { cause: err }),
            );
          },
        );
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        reject: (err) => {
          if (!settle(true)) return;
          reject(err);
        },
      });
      if (gated) ticket = gate.submit(key, priority, send);
      else send();
    });
  }

  private orphan(serial: number, gate: CallGate): void {
    if (gate !== this.gate) {
      gate.done();
      return;
    }
    this.orphans.set(serial, gate);
  }

  /**
   * The gated replacement of the MessageBus's `call` (what node-ble and dbus-next's proxies use):
   * the same bound and queue as {@link SharedBus.callOrdered}, a deadline ({@link BusLimits.foreignCallTimeoutMs}),
   * a retry after a LimitsExceeded refusal, and a {@link BusLostError} when the connection dies
   * (dbus-next itself would leave the call pending forever). Errors stay dbus-next's DBusErrors,
   * as node-ble's callers expect.
   */
  private foreignCall(
    msg: DBusMessage,
    rawCall: (msg: DBusMessage) => Promise<DBusMessage | null>,
    gate: CallGate,
    generation: number,
  ): Promise<DBusMessage | null> {
    if (msg.destination === BUS_DAEMON || (msg.flags & NO_REPLY_EXPECTED) !== 0) return rawCall(msg);
    if (generation !== this.generation) {
      return Promise.reject(new BusLostError(`${msg.interface}.${msg.member} on ${msg.path}: bus was lost`));
    }
    const member = `${msg.interface}.${msg.member}`;
    const key = fairnessKey(msg.path);
    const timeoutMs = this.foreignTimeoutMs;
    const id = ++this.callIds;
    return new Promise<DBusMessage | null>((resolve, reject) => {
      let settled = false;
      let ticket: GateTicket | undefined;
      let holdsSlot = false;
      let refusals = 0;
      let attempt = 0;
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        this.pending.delete(id);
        ticket?.cancel();
        if (holdsSlot) {
          holdsSlot = false;
          gate.done();
        }
        return true;
      };
      const timer = setTimeout(() => {
        const queued = ticket !== undefined && !ticket.admitted;
        if (!settle()) return;
        const serial = msg.serial;
        const internals = this.bus as unknown as MessageBusInternals | undefined;
        if (serial !== null && internals?._methodReturnHandlers)
          delete internals._methodReturnHandlers[serial];
        const err = new DBusTimeoutError(member, msg.path, timeoutMs);
        if (queued)
          err.message = `${member} on ${msg.path} waited ${timeoutMs} ms for a call slot and was never sent`;
        reject(err);
      }, timeoutMs);
      const send = (): void => {
        if (settled) return;
        holdsSlot = true;
        if (gate.inFlight > this.peakInFlight) this.peakInFlight = gate.inFlight;
        const mine = ++attempt;
        this.sentCalls += 1;
        rawCall(msg).then(
          (reply) => {
            if (mine !== attempt || !settle()) return;
            resolve(reply);
          },
          (err: unknown) => {
            if (mine !== attempt || settled) return;
            if (isLimitsExceeded(err)) {
              this.limitsExceeded += 1;
              if (refusals < MAX_REFUSALS && generation === this.generation) {
                refusals += 1;
                gate.refused();
                holdsSlot = false;
                gate.done();
                // dbus-next gives a message that was sent once a new serial on the next call().
                ticket = gate.submit(key, 'normal', send, true);
                return;
              }
            }
            if (!settle()) return;
            reject(err);
          },
        );
      };
      this.pending.set(id, {
        reject: (err) => {
          if (!settle()) return;
          reject(err);
        },
      });
      ticket = gate.submit(key, 'normal', send);
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
    // Every call on this connection, node-ble's included, goes through one bound and one queue.
    this.gate = new CallGate(this.maxInFlight);
    const gate = this.gate;
    const dbusNextCall = bus.call.bind(bus);
    const internals = bus as unknown as MessageBusInternals;
    // dbus-next's MessageBus.call stores `_nameOwners[destination] = reply.sender` for every reply
    // and drops an entry only on a NameOwnerChanged of a well-known name, so each unique name that
    // ever answered (a bluetoothd per restart: the mirror calls GetManagedObjects on its unique
    // name) would stay for the connection's lifetime. Its routing check reads the entries of
    // well-known names only, so those of unique names are forgotten once the call settled.
    const rawCall = (msg: DBusMessage): Promise<DBusMessage | null> => {
      const reply = dbusNextCall(msg);
      const destination = msg.destination;
      if (typeof destination === 'string' && destination.startsWith(':')) {
        const forget = (): void => {
          if (internals._nameOwners) delete internals._nameOwners[destination];
        };
        reply.then(forget, forget);
      }
      return reply;
    };
    this.rawCall = rawCall;
    bus.call = (msg: DBusMessage) => this.foreignCall(msg, rawCall, gate, generation);
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
        if (this.liveSerials.has(serial)) this.replySeqs.set(serial, seq);
        const orphanGate = this.orphans.get(serial);
        if (orphanGate !== undefined) {
          this.orphans.delete(serial);
          orphanGate.done();
        }
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
    // Queued calls first: a settling call frees its slot, which would send the next queued one.
    this.gate.reset();
    for (const p of [...this.pending.values()]) p.reject(err);
    this.pending.clear();
    this.orphans.clear(); // the daemon forgets a dead connection's pending replies with it
  }

  private disposeBus(): Promise<void> {
    const bus = this.bus;
    this.bus = undefined;
    this.rawCall = undefined;
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

function isLimitsExceeded(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { type?: unknown }).type === LIMITS_EXCEEDED;
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
  limits: BusLimits = {},
): SharedBus {
  if (limits.maxInFlightCalls !== undefined) validateMaxInFlightCalls(limits.maxInFlightCalls);
  if (limits.foreignCallTimeoutMs !== undefined)
    validateTimeoutMs(limits.foreignCallTimeoutMs, 'foreignCallTimeoutMs');
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
    bus = new SharedBus(address, methods, limits);
    registry.set(key, bus);
  } else {
    bus.applyLimits(limits);
  }
  bus.retain();
  return bus;
}
