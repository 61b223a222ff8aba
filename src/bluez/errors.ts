/**
 * Typed errors and the error classification of docs/errors.md.
 *
 * BlueZ reports failures as D-Bus errors whose *name* is stable and whose *text* is not
 * (it changes between BlueZ versions and carries kernel strings such as
 * "le-connection-abort-by-local"). So we classify by name first and fall back to the
 * text only for the generic `org.bluez.Error.Failed` and for node-ble's plain Errors.
 */

/** The failure classes of BlueZ errors (docs/errors.md); each decides the default action and backoff. */
export type ErrorClass =
  | 'inProgress'
  | 'aborted'
  | 'outOfSlots'
  | 'notFound'
  | 'notReady'
  | 'noReply'
  | 'bluezGone'
  | 'notConnected'
  | 'limitsExceeded'
  | 'other';

/** What the connection machine should do by default for an error class (docs/errors.md, Failure classes). */
export type DefaultAction =
  | 'clearStalePendingConnectAndRetry'
  | 'waitDisconnectedAndRetry'
  | 'rotateAdapterOrQueue'
  | 'rediscoverAndRetry'
  | 'powerOnOrEscalate'
  | 'escalateDiagnose'
  | 'waitForBluez'
  | 'treatAsPhantom'
  | 'retryAfterDrain'
  | 'retry';

/** Result of {@link classifyError}. */
export interface Classification {
  /** The failure class (docs/errors.md). */
  readonly class: ErrorClass;
  /**
   * Delay before the next attempt. For `bluezGone` it is 0: the wait is event-driven
   * (`waitForBluez`), never a timer; for `notFound` the wait may end early when the device reappears.
   */
  readonly backoffMs: number;
  /** The default action for this class. */
  readonly action: DefaultAction;
}

/**
 * The class of one failed attempt: a BlueZ error class, or a failure that is not a BlueZ error:
 * `validation` (connected, failed validation), `phantom` (Connected without ServicesResolved, left
 * alone), `zombie` (an established link went silent: Connected stayed true, no data came within the
 * watchdog's timeout) and `stalled` (this process's event loop was blocked while a Connect was pending
 * and the stall guard cancelled it out of band).
 */
export type FailureClass = ErrorClass | 'validation' | 'phantom' | 'zombie' | 'stalled';

/** One failed attempt, kept on the final error so that a person can see every cause. */
export interface AttemptRecord {
  /** 1-based attempt number. */
  readonly attempt: number;
  /** Adapter used for the attempt (hciN). */
  readonly adapter?: string;
  /** Why the attempt failed, `validation` and `phantom` included. */
  readonly errorClass: FailureClass;
  /** `code` of the attempt's error (or 'UNKNOWN'). */
  readonly code: string;
  /** Message of the attempt's error. */
  readonly message: string;
}

/** Options common to every {@link BluezError}. */
export interface BluezErrorOptions {
  /** The D-Bus error name, when the error came from D-Bus. */
  dbusName?: string;
  /** The adapter involved (hciN). */
  adapter?: string;
  /** The device address involved (AA:BB:CC:DD:EE:FF). */
  device?: string;
  /** Overrides the class's default advice. */
  advice?: string;
  /** Every attempt that led to this error (for final errors). */
  attempts?: readonly AttemptRecord[];
  /** The underlying error. */
  cause?: unknown;
  /** Connected devices on the adapter when the error happened (set by connect; see {@link classifyError}). */
  linksOnAdapter?: number;
}

const CLASS_TABLE: Record<ErrorClass, { backoffMs: number; action: DefaultAction; advice: string }> = {
  inProgress: {
    backoffMs: 250,
    action: 'clearStalePendingConnectAndRetry',
    advice:
      'BlueZ still has a connect pending for this device (often a stale one from an earlier attempt). ' +
      'Cancel it with Disconnect or remove the device, then retry.',
  },
  aborted: {
    backoffMs: 250,
    action: 'waitDisconnectedAndRetry',
    advice:
      'The radio link was aborted while connecting (interference, range, or a busy controller). ' +
      'This is usually transient: wait until Connected is false and retry.',
  },
  outOfSlots: {
    backoffMs: 4000,
    action: 'rotateAdapterOrQueue',
    advice:
      'The adapter has no free connection slot. Use another adapter, disconnect an idle device, or lower ' +
      'slotsPerAdapter to the controller limit (CSR 5, Broadcom/Raspberry Pi 7).',
  },
  notFound: {
    backoffMs: 4000,
    action: 'rediscoverAndRetry',
    advice:
      'BlueZ does not know this device (or object) on this adapter. Run discovery until it is seen ' +
      'advertising, check that it is in range and powered, then retry.',
  },
  notReady: {
    backoffMs: 1000,
    action: 'powerOnOrEscalate',
    advice:
      'The adapter is not ready (usually powered off or blocked by rfkill). Power it on ' +
      '(bluetoothctl power on, or rfkill unblock bluetooth) and retry.',
  },
  noReply: {
    backoffMs: 250,
    action: 'escalateDiagnose',
    advice:
      'bluetoothd did not answer in time. It may be busy or stuck; check `systemctl status bluetooth` ' +
      'and the controller (btmon), or raise the timeout if the system is very slow.',
  },
  bluezGone: {
    backoffMs: 0,
    action: 'waitForBluez',
    advice:
      'bluetoothd (org.bluez) is not on the bus, or the bus itself went away. Start or restart ' +
      'bluetooth.service; the library waits for org.bluez to return.',
  },
  notConnected: {
    backoffMs: 0,
    action: 'treatAsPhantom',
    advice:
      'BlueZ says the device is not connected although a GATT operation was attempted: the link is gone ' +
      'or half-open. Reconnect.',
  },
  limitsExceeded: {
    backoffMs: 250,
    action: 'retryAfterDrain',
    advice:
      'dbus-daemon refused the call because this connection already had as many calls awaiting a reply ' +
      'as the bus allows (max_replies_per_connection: 128 on a stock system bus). It is transient: the ' +
      'call is retried once calls in flight have been answered, and it never counts toward escalation. ' +
      'If it persists, the bus is configured below maxInFlightCalls (default 64): lower maxInFlightCalls ' +
      'in openBluez, or raise the limit in the bus configuration.',
  },
  other: {
    backoffMs: 100,
    action: 'retry',
    advice: 'Unclassified BlueZ failure; it counts as a connect error and is retried.',
  },
};

/**
 * Base class of every error this library raises for BlueZ problems.
 * `code` is stable across versions and safe to switch on; `advice` is for people.
 */
export class BluezError extends Error {
  /** Stable machine-readable code, e.g. `OUT_OF_SLOTS`. */
  readonly code: string;
  /**
   * Why it failed: for a BlueZ error one of the {@link ErrorClass} classes that decide the default
   * action and backoff; a final error may carry a class that is no BlueZ error (validation, phantom,
   * zombie, stalled).
   */
  readonly errorClass: FailureClass;
  /** The D-Bus error name, when the error came from D-Bus. */
  readonly dbusName: string | undefined;
  /** The adapter involved (hciN), when known. */
  readonly adapter: string | undefined;
  /** The device address involved, when known. */
  readonly device: string | undefined;
  /** What a person can do about it. */
  readonly advice: string;
  /** Every attempt that led here (empty for single-call errors). */
  readonly attempts: readonly AttemptRecord[];
  /**
   * Connected devices on the adapter when a connect failed. bluetoothd reports a saturated
   * controller (HCI 0x0d) with the same "le-connection-abort-by-local" as an RF abort, so only this
   * count tells the two apart (see {@link classifyError}'s `slotsPerAdapter`).
   */
  linksOnAdapter: number | undefined;
  /**
   * For a failed connect: whether BlueZ showed the link down (Connected=false) before the error
   * was handed on, so a retry cannot meet the old link. Undefined when nobody looked.
   */
  linkDownSeen: boolean | undefined = undefined;

  /**
   * @param code - stable code
   * @param errorClass - failure class (docs/errors.md)
   * @param message - human-readable message
   * @param options - D-Bus name, adapter, device, advice, attempts, cause
   */
  constructor(code: string, errorClass: FailureClass, message: string, options: BluezErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.errorClass = errorClass;
    this.dbusName = options.dbusName;
    this.adapter = options.adapter;
    this.device = options.device;
    this.advice =
      options.advice ??
      (isErrorClass(errorClass) ? CLASS_TABLE[errorClass].advice : NON_BLUEZ_FAILURE_ADVICE[errorClass]);
    this.attempts = options.attempts ?? [];
    this.linksOnAdapter = options.linksOnAdapter;
  }
}

/** Advice for a final failure whose last attempt failed without a BlueZ error. */
const NON_BLUEZ_FAILURE_ADVICE: Readonly<Record<Exclude<FailureClass, ErrorClass>, string>> = {
  validation:
    'The device connected but did not pass validation on any attempt. If services appear late (Telink ' +
    'chips), raise lateGattDelaysMs; otherwise check the validator and the device.',
  phantom:
    'BlueZ reports the device Connected without resolved services on this adapter, and it was left alone ' +
    'because another process may own that link. Set closeInactiveConnections to clear it, or find the ' +
    'process holding the link (bluetoothctl info).',
  zombie:
    'The link stayed Connected but the device sent nothing for longer than the watchdog timeout. Check ' +
    'the device (battery, firmware hang) and that watchdog.timeoutMs is above its notification period.',
  stalled:
    "This process's event loop was blocked while a Connect was pending, and the stall guard cancelled " +
    'the connect so the controller slot was not held. Find the synchronous work (CPU loop, sync fs call ' +
    'on a hung mount, native addon) that blocks the loop.',
};

function isErrorClass(cls: FailureClass): cls is ErrorClass {
  return cls in CLASS_TABLE;
}

/** Final failure of a managed connection; `attempts` lists every attempt's cause. */
export class ConnectionFailedError extends BluezError {
  /**
   * @param message - summary
   * @param options - attempts, adapter, device, cause; `errorClass` is the last attempt's failure
   *   class (validation, phantom, zombie and stalled included)
   */
  constructor(message: string, options: BluezErrorOptions & { errorClass?: FailureClass } = {}) {
    super('CONNECTION_FAILED', options.errorClass ?? 'other', message, options);
  }
}

/** What the stall guard did while the event loop was blocked. */
export interface StallGuardAction {
  /** How long the main loop went without a heartbeat when the guard acted, in ms. */
  readonly stalledMs: number;
  /** The out-of-band Device1.Disconnect: `sent` (BlueZ replied), or the error text. */
  readonly disconnect: string;
  /** Cross-process slot locks of this process the guard released (0 when none were held). */
  readonly locksReleased: number;
}

/**
 * A Connect pending while this process's event loop was blocked for longer than `stallGuardMs`: the
 * stall guard (a worker thread) cancelled it with Device1.Disconnect so bluetoothd did not hold the
 * controller slot for the whole block. Failure class `stalled`; not a BlueZ error.
 */
export class StalledError extends Error {
  /** Stable code. */
  readonly code = 'EVENT_LOOP_STALLED';
  /** Failure class of the attempt. */
  readonly errorClass: FailureClass = 'stalled';
  /** Never a D-Bus error. */
  readonly dbusName: string | undefined = undefined;
  /** Adapter of the cancelled connect. */
  readonly adapter: string;
  /** Device of the cancelled connect. */
  readonly device: string;
  /** What the guard did. */
  readonly guard: StallGuardAction;
  /** What a person can do about it. */
  readonly advice: string;

  /** @param adapter - adapter of the connect; @param device - its address; @param guard - what the guard did */
  constructor(adapter: string, device: string, guard: StallGuardAction) {
    super(
      `the event loop was blocked for ${Math.round(guard.stalledMs)} ms while connecting ${device} on ${adapter}; ` +
        `the stall guard cancelled the connect (Disconnect: ${guard.disconnect}, locks released: ${guard.locksReleased})`,
    );
    this.name = 'StalledError';
    this.adapter = adapter;
    this.device = device;
    this.guard = guard;
    this.advice = NON_BLUEZ_FAILURE_ADVICE.stalled;
  }
}

/** The adapter has no free connection slot (controller limit or "connection slot" errors). */
export class OutOfSlotsError extends BluezError {
  /** @param message - what failed; @param options - D-Bus name, adapter, device */
  constructor(message: string, options: BluezErrorOptions = {}) {
    super('OUT_OF_SLOTS', 'outOfSlots', message, options);
  }
}

/** BlueZ does not know the device or object (UnknownObject, DoesNotExist, device missing from the mirror). */
export class DeviceNotFoundError extends BluezError {
  /** @param message - what is missing; @param options - D-Bus name, adapter, device */
  constructor(message: string, options: BluezErrorOptions = {}) {
    super('DEVICE_NOT_FOUND', 'notFound', message, options);
  }
}

/** The radio link was aborted (le-connection-abort-by-local, br-connection-canceled, ECONNABORTED). */
export class AbortedError extends BluezError {
  /** @param message - what failed; @param options - D-Bus name, adapter, device */
  constructor(message: string, options: BluezErrorOptions = {}) {
    super('CONNECTION_ABORTED', 'aborted', message, options);
  }
}

/** The connection came up but failed validation (empty GATT, or the user validator said no). */
export class ValidationError extends BluezError {
  /** @param message - why validation failed; @param options - adapter, device, cause */
  constructor(message: string, options: BluezErrorOptions = {}) {
    super('VALIDATION_FAILED', 'other', message, {
      advice:
        'The device connected but did not pass validation. If services appear late (Telink chips), ' +
        'raise lateGattDelaysMs; otherwise check the validator.',
      ...options,
    });
  }
}

/** An adapter-level failure (missing adapter, power change not verified, reset failed). */
export class AdapterError extends BluezError {
  /**
   * @param message - what failed
   * @param options - adapter, D-Bus name, advice, cause
   * @param code - a more specific code (default `ADAPTER_ERROR`)
   * @param errorClass - default `other`
   */
  constructor(
    message: string,
    options: BluezErrorOptions = {},
    code = 'ADAPTER_ERROR',
    errorClass: ErrorClass = 'other',
  ) {
    super(code, errorClass, message, options);
  }
}

/** The adapter is not ready: org.bluez.Error.NotReady or powered off. */
export class AdapterNotReadyError extends AdapterError {
  /** @param message - what failed; @param options - adapter, D-Bus name */
  constructor(message: string, options: BluezErrorOptions = {}) {
    super(message, options, 'ADAPTER_NOT_READY', 'notReady');
  }
}

/** A cross-process or in-process lock could not be taken in time. */
export class LockTimeoutError extends BluezError {
  /** @param message - which lock; @param options - adapter, advice */
  constructor(message: string, options: BluezErrorOptions = {}) {
    super('LOCK_TIMEOUT', 'other', message, {
      advice:
        'Another process or task held the lock for the whole timeout. Check which process holds the ' +
        'lock file (bluez-cm doctor) or raise the lock timeout.',
      ...options,
    });
  }
}

/** org.bluez.Error.InProgress: a connect (or discovery) is already pending in BlueZ. */
export class InProgressError extends BluezError {
  /** @param message - what failed; @param options - D-Bus name, adapter, device */
  constructor(message: string, options: BluezErrorOptions = {}) {
    super('IN_PROGRESS', 'inProgress', message, options);
  }
}

/** org.bluez.Error.NotConnected, or "Not connected" from a GATT operation. */
export class NotConnectedError extends BluezError {
  /** @param message - what failed; @param options - D-Bus name, adapter, device */
  constructor(message: string, options: BluezErrorOptions = {}) {
    super('NOT_CONNECTED', 'notConnected', message, options);
  }
}

/** Our own deadline on a D-Bus call expired (dbus-next has none). Names the member and the object path. */
export class DBusTimeoutError extends BluezError {
  /** `Interface.Member` that did not reply. */
  readonly member: string;
  /** Object path the call was sent to. */
  readonly path: string;
  /** The deadline that expired. */
  readonly timeoutMs: number;

  /** @param member - Interface.Member; @param path - object path; @param timeoutMs - deadline; @param options - adapter, device */
  constructor(member: string, path: string, timeoutMs: number, options: BluezErrorOptions = {}) {
    super('DBUS_TIMEOUT', 'noReply', `${member} on ${path} did not reply within ${timeoutMs} ms`, options);
    this.member = member;
    this.path = path;
    this.timeoutMs = timeoutMs;
  }
}

/** org.freedesktop.DBus.Error.NoReply (the daemon gave up, or the service died mid-call). */
export class NoReplyError extends BluezError {
  /** @param message - what failed; @param options - D-Bus name, adapter, device */
  constructor(message: string, options: BluezErrorOptions = {}) {
    super('DBUS_NO_REPLY', 'noReply', message, options);
  }
}

/** org.bluez is not on the bus (ServiceUnknown / NameHasNoOwner), or we are waiting for it to return. */
export class BluezUnavailableError extends BluezError {
  /** @param message - what failed; @param options - D-Bus name */
  constructor(message: string, options: BluezErrorOptions = {}) {
    super('BLUEZ_UNAVAILABLE', 'bluezGone', message, options);
  }
}

/** The D-Bus connection itself died (daemon killed, socket closed) while a call was pending. */
export class BusLostError extends BluezError {
  /** @param message - what failed; @param options - cause */
  constructor(message: string, options: BluezErrorOptions = {}) {
    super('BUS_LOST', 'bluezGone', message, {
      advice:
        'The connection to the D-Bus daemon was lost. The library reconnects by itself with backoff; ' +
        'if it persists check that dbus is running and the socket address is right.',
      ...options,
    });
  }
}

/**
 * org.freedesktop.DBus.Error.LimitsExceeded: dbus-daemon refused the call for one of its
 * per-connection limits, usually `max_replies_per_connection` (dbus's bus/connection.c,
 * bus_connections_expect_reply). Transient (class `limitsExceeded`): never counted toward escalation.
 */
export class BusLimitsExceededError extends BluezError {
  /** @param message - the daemon's text; @param options - D-Bus name, adapter, device */
  constructor(message: string, options: BluezErrorOptions = {}) {
    super('DBUS_LIMITS_EXCEEDED', 'limitsExceeded', message, options);
  }
}

/** Any other D-Bus error from BlueZ. `dbusName` keeps the original name. */
export class DBusCallError extends BluezError {
  /** @param message - the D-Bus error text; @param options - D-Bus name, adapter, device */
  constructor(message: string, options: BluezErrorOptions = {}) {
    super('DBUS_CALL_FAILED', 'other', message, options);
  }
}

/** Shape of dbus-next's DBusError (duck-typed so a second copy of dbus-next, e.g. node-ble's, also matches). */
interface DBusErrorLike {
  type: string;
  text?: string;
  message: string;
}

function isDBusErrorLike(err: unknown): err is DBusErrorLike {
  return (
    typeof err === 'object' &&
    err !== null &&
    typeof (err as { type?: unknown }).type === 'string' &&
    typeof (err as { message?: unknown }).message === 'string'
  );
}

/** D-Bus names that decide the class on their own (docs/errors.md: by name first). */
const BY_NAME: Readonly<Record<string, ErrorClass>> = {
  'org.bluez.Error.InProgress': 'inProgress',
  'org.bluez.Error.NotReady': 'notReady',
  'org.bluez.Error.NotConnected': 'notConnected',
  'org.bluez.Error.DoesNotExist': 'notFound',
  'org.freedesktop.DBus.Error.UnknownObject': 'notFound',
  'org.freedesktop.DBus.Error.NoReply': 'noReply',
  'org.freedesktop.DBus.Error.Timeout': 'noReply',
  'org.freedesktop.DBus.Error.TimedOut': 'noReply',
  'org.freedesktop.DBus.Error.ServiceUnknown': 'bluezGone',
  'org.freedesktop.DBus.Error.NameHasNoOwner': 'bluezGone',
  'org.freedesktop.DBus.Error.Disconnected': 'bluezGone',
  'org.freedesktop.DBus.Error.LimitsExceeded': 'limitsExceeded',
};

/** Text patterns, tried in order, for org.bluez.Error.Failed and for errors without a D-Bus name. */
const BY_TEXT: ReadonlyArray<readonly [RegExp, ErrorClass]> = [
  [/le-connection-abort-by-local|br-connection-canceled|software caused connection abort/i, 'aborted'],
  [/connection slot|available connection|limited resources|\b0x0d\b/i, 'outOfSlots'],
  [/not connected/i, 'notConnected'],
  [/in ?progress/i, 'inProgress'],
  [/not ready|not powered/i, 'notReady'],
  [/does not exist|not found|unknown ?object/i, 'notFound'],
  [/no ?reply|timed? ?out/i, 'noReply'],
  [/service ?unknown|name ?has ?no ?owner/i, 'bluezGone'],
];

function classOf(err: unknown): ErrorClass {
  // A final error's class may be no BlueZ error (validation, phantom, …): as a BlueZ error it is other.
  if (err instanceof BluezError) return isErrorClass(err.errorClass) ? err.errorClass : 'other';
  if (isDBusErrorLike(err)) {
    const byName = BY_NAME[err.type];
    if (byName !== undefined) return byName;
    return classOfText(err.text ?? err.message);
  }
  if (err instanceof Error) {
    // AbortSignal.timeout() rejects with a DOMException named TimeoutError: treat it as our deadline.
    if (err.name === 'TimeoutError') return 'noReply';
    return classOfText(err.message);
  }
  return 'other';
}

function classOfText(text: string): ErrorClass {
  for (const [pattern, cls] of BY_TEXT) if (pattern.test(text)) return cls;
  return 'other';
}

/** Context that sharpens {@link classifyError}. */
export interface ClassifyContext {
  /**
   * The adapter's connection slot limit. An `aborted` connect error on an adapter that already held
   * this many links is `outOfSlots`: bluetoothd folds HCI 0x0d (limited resources) into
   * ECONNABORTED → "le-connection-abort-by-local", the same text as an RF abort.
   */
  slotsPerAdapter?: number;
  /** Links on the adapter when the error happened; defaults to the error's own `linksOnAdapter`. */
  linksOnAdapter?: number;
  /**
   * Whether the adapter was powered when the error happened (from the mirror). An error with no
   * class of its own on an unpowered adapter is `notReady`: bluetoothd 5.66 answers an LE
   * Connect on a powered-off adapter with org.bluez.Error.Failed "Input/output error", not
   * NotReady (src/device.c device_connect_le → -EIO).
   */
  adapterPowered?: boolean;
}

/**
 * Classifies any error by the table of docs/errors.md: D-Bus error name first, text second, then the
 * context (slot count, adapter power) for what name and text leave open.
 * Accepts dbus-next `DBusError`s, our {@link BluezError}s, node-ble's plain Errors and anything else.
 */
export function classifyError(err: unknown, context: ClassifyContext = {}): Classification {
  let cls = classOf(err);
  const links = context.linksOnAdapter ?? (err instanceof BluezError ? err.linksOnAdapter : undefined);
  if (
    cls === 'aborted' &&
    context.slotsPerAdapter !== undefined &&
    links !== undefined &&
    links >= context.slotsPerAdapter
  ) {
    cls = 'outOfSlots';
  }
  if (cls === 'other' && context.adapterPowered === false) cls = 'notReady';
  const row = CLASS_TABLE[cls];
  return { class: cls, backoffMs: row.backoffMs, action: row.action };
}

/** The default advice text for a class. */
export function adviceFor(cls: ErrorClass): string {
  return CLASS_TABLE[cls].advice;
}

/** True for cancellation (AbortSignal aborted): never counted as an ordinary failed attempt. */
export function isAbortError(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

/** Context attached to a converted error. */
export interface ErrorContext {
  /** Adapter involved. */
  adapter?: string;
  /** Connected devices on the adapter at the time (connect failures). */
  linksOnAdapter?: number;
  /** Device address involved. */
  device?: string;
  /** `Interface.Member` of the call, used in the message. */
  member?: string;
  /** Object path of the call, used in the message. */
  path?: string;
}

/**
 * Converts a raw error (dbus-next DBusError, node-ble Error) into the typed {@link BluezError}
 * subclass of its class. Our own errors, AbortError and TimeoutError DOMExceptions pass through.
 */
export function toBluezError(err: unknown, ctx: ErrorContext = {}): Error {
  if (err instanceof BluezError || isAbortError(err)) return err as Error;
  if (err instanceof Error && err.name === 'TimeoutError' && !isDBusErrorLike(err)) return err;
  const dbusName = isDBusErrorLike(err) ? err.type : undefined;
  const text = isDBusErrorLike(err)
    ? (err.text ?? err.message)
    : err instanceof Error
      ? err.message
      : String(err);
  const where = ctx.member ? `${ctx.member}${ctx.path ? ` on ${ctx.path}` : ''}: ` : '';
  const message = `${where}${text}${dbusName ? ` (${dbusName})` : ''}`;
  const options: BluezErrorOptions = {
    dbusName,
    adapter: ctx.adapter,
    device: ctx.device,
    cause: err,
    linksOnAdapter: ctx.linksOnAdapter,
  };
  switch (classOf(err)) {
    case 'inProgress':
      return new InProgressError(message, options);
    case 'aborted':
      return new AbortedError(message, options);
    case 'outOfSlots':
      return new OutOfSlotsError(message, options);
    case 'notFound':
      return new DeviceNotFoundError(message, options);
    case 'notReady':
      return new AdapterNotReadyError(message, options);
    case 'noReply':
      return new NoReplyError(message, options);
    case 'bluezGone':
      return new BluezUnavailableError(message, options);
    case 'notConnected':
      return new NotConnectedError(message, options);
    case 'limitsExceeded':
      return new BusLimitsExceededError(message, options);
    default:
      return new DBusCallError(message, options);
  }
}

/**
 * The D-Bus socket cannot be opened at all (missing, refused, not permitted): reported at once by
 * `openBluez` instead of being retried until its deadline. `errno` is ENOENT, EACCES, ECONNREFUSED…
 */
export class BusUnreachableError extends BluezError {
  /** The bus address that was tried. */
  readonly address: string;
  /** The operating system's error code, e.g. `ENOENT`. */
  readonly errno: string;
  /** @param message - what failed, with the path; @param options - address, errno, advice, cause */
  constructor(message: string, options: { address: string; errno: string; advice: string; cause?: unknown }) {
    super('BUS_UNREACHABLE', 'bluezGone', message, { advice: options.advice, cause: options.cause });
    this.address = options.address;
    this.errno = options.errno;
  }
}
