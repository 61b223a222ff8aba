/**
 * The I/O behind the connection machine's named actors (src/machines/connection.ts), over
 * src/bluez. Every call has a deadline and stops when the machine leaves the state (the actor's
 * AbortSignal). Every cleanup targets the adapter of the attempt, never a fixed hci0
 * (docs/architecture.md, Rules every layer keeps).
 */
import { fromCallback, fromPromise, type AnyEventObject } from 'xstate';
import type { BluezClient } from '../bluez/client-types.js';
import {
  AdapterError,
  AdapterNotReadyError,
  BluezError,
  DeviceNotFoundError,
  StalledError,
  ValidationError,
  type StallGuardAction,
  isAbortError,
} from '../bluez/errors.js';
import type { EscalationPolicy, LedgerChange } from '../machines/escalation-policy.js';
import type {
  BondedPhantomOutput,
  ClearPhantomOutput,
  ConnectInput,
  DeviceFinding,
  DeviceOnAdapter,
  DisconnectInput,
  DisconnectOutput,
  GattSettleInput,
  GattSettleOutput,
  InspectInput,
  LinkLossOutput,
  LockInput,
  LockOutput,
  ResetInput,
  ValidateInput,
  ValidationCheck,
} from '../machines/connection-contracts.js';
import { devicePath } from '../bluez/validate.js';
import { WaitTimeoutError } from '../bluez/mirror.js';
import { gattNotEmpty, type Validator } from '../connection/validators.js';
import { lockDevice } from './device-lock.js';
import { sleep } from './sleep.js';
import { providedWatchdogMachine } from './watchdog-actors.js';
import { takeSlot } from './slot-lock.js';
import { findDevice as searchForDevice } from '../discovery/find-device.js';
import type { ResolvedDiscovery } from '../discovery/options.js';
import type { ResolvedSlotLock } from '../lock/config.js';
import { waitGattSettled } from './gatt-settle.js';
import { locateDevice } from './locate-device.js';
import type { LeaseBook } from './lease-book.js';
import { connectAdmission, type ConnectAdmission } from './connect-admission.js';
import { PendingConnects, untilAborted } from './pending-connects.js';

/** What the actors need. */
export interface ConnectionActorDeps {
  readonly bluez: BluezClient;
  /** The caller's validator, run after the built-in GATT-not-empty check. */
  readonly validate?: Validator;
  /**
   * Late-GATT re-check delays (2 000, 4 000, 8 000 by default): their sum is the time budget for a
   * validation whose services or characteristics are missing right after connect; re-checks also
   * follow each settled GATT change. A validator that throws is not waited for.
   */
  readonly lateGattDelaysMs: readonly number[];
  /** Bound of each disconnect step (default 5 000, docs/defaults.md). */
  readonly disconnectTimeoutMs: number;
  /** How long to run discovery for a device that BlueZ does not know (or was just removed). */
  readonly rediscoveryTimeoutMs: number;
  /** Leases of the per-device lock held by this connection actor. */
  readonly leases: LeaseBook;
  /** A shared escalation policy that should see this actor's ledger changes. */
  readonly policy?: EscalationPolicy;
  /**
   * The connection slot limit in force on `adapter` (`slotsPerAdapter`, docs/defaults.md, or the
   * lower limit a pool learned). bluetoothd reports a controller that refuses a link for lack of resources
   * (HCI 0x0d) as le-connection-abort-by-local, the text of an RF abort; with the adapter's links at
   * this limit the connect error is an out-of-slots error, so escalation rotates at once instead of
   * retrying on a saturated controller. Undefined (or no function): aborts stay aborts.
   */
  readonly slotLimit?: (adapter: string) => number | undefined;
  /**
   * The stall guard (stallGuardMs): told of every pending Connect; when it cancelled one while the
   * event loop was blocked, the attempt fails as a {@link StalledError} (class `stalled`).
   */
  readonly stallGuard?: {
    connectPending(adapter: string, address: string): () => StallGuardAction | undefined;
  };
  /**
   * Other adapters to search at the same time when `address` is unknown on the attempt's adapter
   * (an adapter pool: its usable adapters with a free slot for the device). Unset: the attempt's
   * adapter only. When the device turns up on one of them only, the search ends at once with a
   * notFound error for this adapter (the pool then assigns the adapter that hears it).
   */
  readonly searchAdapters?: (address: string) => readonly string[];
  /** Cross-process connection slots (flock files shared with the Python library); undefined: off. */
  readonly slotLock?: ResolvedSlotLock;
  /** Managed discovery settings (scan lock, listen-only); undefined: on-demand scans, no lock. */
  readonly discovery?: ResolvedDiscovery;
  /** The caller's AbortSignal: while establishing, its abort is sent to the machine as CANCEL. */
  readonly signal?: AbortSignal;
  /**
   * The gate that bounds pending Connect calls per adapter (src/actors/connect-admission.ts);
   * default: the one shared by everything on `bluez`.
   */
  readonly admission?: ConnectAdmission;
}

/** Tries of a teardown's verified disconnect (each bounded by disconnectTimeoutMs per step). */
export const TEARDOWN_TRIES = 3;
/** Pause before the next try, times the number of tries so far. */
const TEARDOWN_RETRY_MS = 100;

function ignoreUnlessAbort(err: unknown): void {
  if (isAbortError(err)) throw err;
}

/**
 * Makes sure BlueZ knows `address` on `adapter`: when it does not (removed, expired, or an adapter
 * that never saw it) or has not heard it recently, runs managed discovery
 * (src/discovery: cache first, scan lock, shared session, or only listening) until it appears or
 * `timeoutMs` passes.
 */
export async function rediscover(
  bluez: BluezClient,
  adapter: string,
  address: string,
  timeoutMs: number,
  signal: AbortSignal,
  discovery?: ResolvedDiscovery,
): Promise<boolean> {
  return (await searchForDevice(bluez, [adapter], address, { timeoutMs, signal, discovery })) !== undefined;
}

/**
 * Waits (bounded, cancellable) until the mirror no longer shows `address` on `adapter`. bluetoothd
 * 5.66 replies to RemoveDevice before it emits InterfacesRemoved: a rediscovery started on the reply
 * alone finds the stale object still in the mirror and takes it for the device having reappeared,
 * and the next Connect goes to an object that is about to vanish.
 * @throws WaitTimeoutError (class noReply) when the object outlives `timeoutMs`
 */
async function waitDeviceGone(
  bluez: BluezClient,
  { adapter, address }: DeviceOnAdapter,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<void> {
  await bluez.mirror.waitFor((m) => m.device(adapter, address) === undefined, {
    paths: [devicePath(adapter, address)],
    timeoutMs,
    signal,
    description: `${address} removed from ${adapter}`,
    errorClass: 'noReply',
  });
}

/**
 * Waits (bounded) for Connected=false: after an RF abort the link is briefly up (docs/errors.md, `aborted`).
 * Resolves true when BlueZ showed the link down, false when it was still up at `timeoutMs`.
 */
async function waitLinkDown(
  bluez: BluezClient,
  { adapter, address }: DeviceOnAdapter,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<boolean> {
  return bluez.mirror
    .waitFor((m) => !(m.device(adapter, address)?.connected ?? false), {
      paths: [devicePath(adapter, address)],
      timeoutMs,
      signal,
      description: `Connected=false for ${address} on ${adapter}`,
    })
    .catch((err: unknown) => {
      ignoreUnlessAbort(err);
      return false;
    });
}

/**
 * The time left until the next late-GATT checkpoint (the cumulative sums of `delaysMs` from
 * `startedAt`), or null when the budget (their sum) is spent.
 */
export function nextLateGattCheckIn(
  delaysMs: readonly number[],
  startedAt: number,
  now: number,
): number | null {
  let at = startedAt;
  for (const delay of delaysMs) {
    at += delay;
    if (at > now) return at - now;
  }
  return null;
}

/**
 * The built-in check plus the caller's validator, once. Resolves with what is missing (and when to
 * look again); a validator that throws rejects with a ValidationError (or the abort): a failed read
 * is not a service that has not appeared yet.
 */
async function validateOnce(
  deps: ConnectionActorDeps,
  input: ValidateInput,
  signal: AbortSignal,
): Promise<ValidationCheck> {
  const services = deps.bluez.gattServices(input.adapter, input.address);
  const context = { bluez: deps.bluez, adapter: input.adapter, address: input.address, services, signal };
  const missing = (reason: string): ValidationCheck => ({
    passed: false,
    reason,
    nextCheckInMs: nextLateGattCheckIn(deps.lateGattDelaysMs, input.startedAt, Date.now()),
  });
  if (!(await gattNotEmpty(context))) return missing('no GATT services exported');
  if (deps.validate === undefined) return { passed: true };
  let valid: boolean;
  try {
    valid = await deps.validate(context);
  } catch (err) {
    if (isAbortError(err) || signal.aborted) throw err;
    throw new ValidationError(
      `${input.address} on ${input.adapter} failed validation: the validator threw: ${err instanceof Error ? err.message : String(err)}`,
      { adapter: input.adapter, device: input.address, cause: err },
    );
  }
  return valid ? { passed: true } : missing('the validator returned false');
}

/**
 * The actors' work as plain async functions of (input, signal): what `connectionMachine.provide`
 * runs (through {@link connectionActorImplementations}), and what a test can wrap.
 */
export function connectionActorFunctions(deps: ConnectionActorDeps) {
  const { bluez } = deps;
  // Connect calls not answered yet, including those an attempt stopped waiting for.
  const pendingConnects = new PendingConnects();

  /**
   * Makes sure BlueZ knows `input.address` on `input.adapter` (managed discovery, bounded by
   * `timeoutMs`): after a RemoveDevice, before a Connect. Otherwise a notFound error saying `why`.
   */
  const ensureKnown = async (
    input: DeviceOnAdapter,
    timeoutMs: number,
    signal: AbortSignal,
    why: () => string,
  ): Promise<void> => {
    if (await rediscover(bluez, input.adapter, input.address, timeoutMs, signal, deps.discovery)) return;
    throw new DeviceNotFoundError(why(), { adapter: input.adapter, device: input.address });
  };

  const acquireDeviceLock = async (input: LockInput, signal: AbortSignal): Promise<LockOutput> => {
    const reused = input.lease !== null && deps.leases.holds(input.lease);
    let lease = reused ? input.lease : null;
    if (lease === null) {
      // The in-process mutex is waited for without a timeout of its own (only cancellation or
      // overallTimeoutMs end the wait): giving up on it would race the holder into InProgress.
      const release = await lockDevice(input.address, signal);
      if (signal.aborted) {
        // Granted after the machine left `locking` (CANCEL, or the actor stopped): nobody will take
        // this lease any more, and a lease added now would outlive the actor's own cleanup.
        release();
        throw signal.reason;
      }
      lease = deps.leases.add(release);
    }
    let output: LockOutput;
    if (deps.slotLock === undefined) output = { lease, slotLease: null, degraded: false, waitedMs: 0 };
    else {
      try {
        const slot = await takeSlot(deps.slotLock, input.adapter, deps.leases, signal);
        output = { lease, ...slot };
      } catch (err) {
        // The machine never sees a lease of a failed acquisition: give back what this call took.
        if (!reused) deps.leases.release(lease);
        throw err;
      }
    }
    // XState relays the result a tick after this function returns; an invoke stopped in between
    // (CANCEL, the pool stopping its child) drops it and aborts the signal. Nobody would ever
    // release those leases, and the device's lock would stay taken for the process's lifetime.
    const giveBack = (): void => {
      if (!reused) deps.leases.release(lease);
      if (output.slotLease !== null) deps.leases.release(output.slotLease);
    };
    if (signal.aborted) {
      giveBack();
      throw signal.reason;
    }
    signal.addEventListener('abort', giveBack, { once: true });
    return output;
  };

  const inspectDevice = async (input: InspectInput, _signal: AbortSignal): Promise<DeviceFinding> => {
    if (input.thorough) {
      // Diagnose: is the adapter itself usable? A powered-off adapter looks like a device problem.
      const adapter = bluez.mirror.adapter(input.adapter);
      if (adapter === undefined) {
        throw new AdapterError(`adapter ${input.adapter} is not known to BlueZ`, { adapter: input.adapter });
      }
      if (!adapter.powered) {
        throw new AdapterNotReadyError(`adapter ${input.adapter} is powered off`, { adapter: input.adapter });
      }
    }
    const device = bluez.device(input.adapter, input.address);
    return {
      known: device !== undefined,
      connected: device?.connected ?? false,
      servicesResolved: device?.servicesResolved ?? false,
      paired: device?.paired ?? false,
    };
  };

  const cancelStalePendingConnect = async (input: DeviceOnAdapter, signal: AbortSignal): Promise<void> => {
    // A Disconnect makes bluetoothd drop its pending connect (device.c: a pending Connect is
    // answered with "Cancelled"); unlike RemoveDevice it keeps the freshly discovered device.
    await bluez
      .disconnect(input.adapter, input.address, { timeoutMs: deps.disconnectTimeoutMs, signal })
      .catch((err: unknown) => {
        ignoreUnlessAbort(err);
        if (err instanceof BluezError && (err.errorClass === 'notConnected' || err.errorClass === 'notFound'))
          return;
        throw err;
      });
  };

  const clearDeviceCache = async (input: DeviceOnAdapter, signal: AbortSignal): Promise<void> => {
    const device = bluez.device(input.adapter, input.address);
    // Never remove a connected device: another process may own that link.
    if (device === undefined || device.connected) return;
    await bluez.removeDevice(input.adapter, input.address, { timeoutMs: deps.disconnectTimeoutMs, signal });
    await waitDeviceGone(bluez, input, deps.disconnectTimeoutMs, signal);
    // Removing a device deletes its object until discovery sees it again, and until then a Connect
    // has no object to go to (notFound): bring it back before the next Connect.
    await ensureKnown(
      input,
      deps.rediscoveryTimeoutMs,
      signal,
      () => `${input.address} did not reappear on ${input.adapter} after RemoveDevice`,
    );
  };

  // The steps of a phantom clear (the machine's `phantom` substates bound each one).
  const releaseBondedPhantom = async (
    input: DeviceOnAdapter,
    signal: AbortSignal,
  ): Promise<BondedPhantomOutput> => {
    // RemoveDevice would also delete the bond: a bounded Disconnect first (phantom links never
    // complete it, docs/bluez-facts.md), with RemoveDevice as verifiedDisconnect's fallback.
    const outcome = await bluez.verifiedDisconnect(input.adapter, input.address, {
      timeoutMs: deps.disconnectTimeoutMs,
      signal,
    });
    return { outcome, known: bluez.device(input.adapter, input.address) !== undefined };
  };

  const removePhantom = async (input: DeviceOnAdapter, signal: AbortSignal): Promise<void> => {
    // Straight to RemoveDevice: on a connected device bluetoothd runs the same disconnect as
    // Device1.Disconnect (src/adapter.c remove_device → device_request_disconnect) and removes
    // the object once the link is down, so a Disconnect first only adds its own wait, the whole
    // disconnectTimeoutMs on a phantom link that never completes it.
    if (bluez.device(input.adapter, input.address) === undefined) return;
    await bluez.removeDevice(input.adapter, input.address, { timeoutMs: deps.disconnectTimeoutMs, signal });
  };

  const awaitDeviceGone = (input: DeviceOnAdapter, signal: AbortSignal): Promise<void> =>
    waitDeviceGone(bluez, input, deps.disconnectTimeoutMs, signal);

  const rediscoverDevice = async (
    input: DeviceOnAdapter,
    signal: AbortSignal,
  ): Promise<ClearPhantomOutput> => ({
    reappeared: await rediscover(
      bluez,
      input.adapter,
      input.address,
      deps.rediscoveryTimeoutMs,
      signal,
      deps.discovery,
    ),
  });

  const findDevice = async (input: DeviceOnAdapter, signal: AbortSignal): Promise<void> => {
    if (bluez.device(input.adapter, input.address) !== undefined) return;
    const search = deps.searchAdapters;
    if (search !== undefined) {
      // Discovery on every adapter that could take the device, at once (and on those that become
      // usable meanwhile, e.g. powering up after a bluetoothd restart): one round finds it.
      const others = (): string[] => search(input.address).filter((a) => a !== input.adapter);
      const all = [input.adapter, ...others()];
      const seenOn = await locateDevice(
        bluez,
        all,
        input.address,
        deps.rediscoveryTimeoutMs,
        signal,
        deps.discovery,
        others,
      );
      if (bluez.device(input.adapter, input.address) !== undefined) return;
      throw new DeviceNotFoundError(
        seenOn === undefined
          ? `${input.address} was not discovered on ${all.join(', ')} within rediscoveryTimeoutMs (${deps.rediscoveryTimeoutMs} ms)`
          : `${input.address} is heard on ${seenOn}, not on ${input.adapter}`,
        { adapter: input.adapter, device: input.address },
      );
    }
    await ensureKnown(
      input,
      deps.rediscoveryTimeoutMs,
      signal,
      () =>
        `${input.address} is not known on ${input.adapter} and was not discovered within ` +
        `rediscoveryTimeoutMs (${deps.rediscoveryTimeoutMs} ms)`,
    );
  };

  const connectWithDeadline = async (input: ConnectInput, signal: AbortSignal): Promise<void> => {
    // The search is the machine's `connecting.searching`: an object that went away since is
    // reported as notFound, and the machine searches again within the attempt deadline.
    if (bluez.device(input.adapter, input.address) === undefined) {
      throw new DeviceNotFoundError(
        `${input.address} is no longer known on ${input.adapter} (removed or expired before Connect)`,
        { adapter: input.adapter, device: input.address },
      );
    }
    // Our turn on the adapter (a bounded number of pending Connects per adapter, first come first
    // served): released when the call settled, on every path.
    const admission = deps.admission ?? connectAdmission(bluez);
    const release = await admission.acquire(input.adapter, signal);
    if (signal.aborted) {
      release();
      throw signal.reason;
    }
    // The machine's `attemptDeadline` ends the attempt; the call's own deadline is only a backstop
    // a little later, so that the machine (which tears the pending connect down) wins the race.
    const backstopMs = input.timeoutMs + 1000;
    const settled = deps.stallGuard?.connectPending(input.adapter, input.address);
    try {
      const connectStarted = performance.now();
      try {
        // Not aborted with the attempt: bluetoothd goes on connecting anyway, and the teardown
        // waits for this call's reply (src/actors/pending-connects.ts). Its deadline still bounds it.
        const call = bluez.connect(input.adapter, input.address, { timeoutMs: backstopMs });
        await untilAborted(pendingConnects.track(input.adapter, input.address, call), signal);
      } finally {
        // The turn ends with the Connect call; service discovery runs on the link already made.
        release();
      }
      await bluez.mirror.waitFor((m) => m.device(input.adapter, input.address)?.servicesResolved === true, {
        paths: [devicePath(input.adapter, input.address)],
        timeoutMs: Math.max(1, backstopMs - (performance.now() - connectStarted)),
        signal,
        description: `ServicesResolved=true for ${input.address} on ${input.adapter}`,
        errorClass: 'noReply',
      });
      // The guard cancelled it although it came up: the link is being torn down out of band.
      const stall = settled?.();
      if (stall !== undefined) throw new StalledError(input.adapter, input.address, stall);
    } catch (err) {
      if (err instanceof StalledError) throw err;
      const stall = settled?.();
      if (stall !== undefined) {
        await waitLinkDown(bluez, input, deps.disconnectTimeoutMs, signal);
        throw new StalledError(input.adapter, input.address, stall);
      }
      if (err instanceof BluezError && err.errorClass === 'aborted') {
        // The machine waits for the link to drop (`connecting.awaiting-link-down`) and, with the
        // adapter's links at this limit, classes the abort as out of slots.
        const limit = deps.slotLimit?.(input.adapter);
        throw limit === undefined ? err : Object.assign(err, { slotLimit: limit });
      }
      throw err;
    }
  };

  const waitLinkGone = async (input: DeviceOnAdapter, signal: AbortSignal): Promise<void> => {
    // No deadline of its own: the machine's `after linkDownDeadline` ends the wait.
    await bluez.mirror.waitFor((m) => !(m.device(input.adapter, input.address)?.connected ?? false), {
      signal,
      description: `Connected=false for ${input.address} on ${input.adapter}`,
    });
  };

  const awaitGattSettled = async (
    input: GattSettleInput,
    signal: AbortSignal,
  ): Promise<GattSettleOutput> => ({
    outcome: await waitGattSettled(bluez, input.adapter, input.address, {
      untilMs: performance.now() + input.timeoutMs,
      signal,
    }),
  });

  const verifiedDisconnectOnce = async (
    input: DisconnectInput,
    signal: AbortSignal,
  ): Promise<DisconnectOutput> => {
    const device = bluez.device(input.adapter, input.address);
    const connectMayBePending =
      input.reason === 'cancelled' || input.reason === 'attempt-deadline' || input.reason === 'requeued';
    if (connectMayBePending && !device?.connected) {
      // Not connected yet, but our Connect may still be pending in bluetoothd: a Disconnect cancels it.
      await bluez
        .disconnect(input.adapter, input.address, { timeoutMs: deps.disconnectTimeoutMs, signal })
        .catch(ignoreUnlessAbort);
      if (await waitLinkDown(bluez, input, deps.disconnectTimeoutMs, signal)) {
        // No link yet, but the Connect we stopped waiting for may still make one if that
        // Disconnect did not reach bluetoothd in time (it hung): wait (bounded) for its reply.
        const reply = await pendingConnects.reply(
          input.adapter,
          input.address,
          deps.disconnectTimeoutMs,
          signal,
        );
        if (reply === 'pending') {
          throw new WaitTimeoutError(
            `the reply to the abandoned Connect of ${input.address} on ${input.adapter}`,
            deps.disconnectTimeoutMs,
            'noReply',
            input.adapter,
          );
        }
        if (reply === 'failed' && !(bluez.device(input.adapter, input.address)?.connected ?? false))
          return { outcome: 'notConnected' };
      }
      // The Connect won the race and that Disconnect did not take the link down (it hung or was
      // refused): the link is up in BlueZ, so tear it down like any other, RemoveDevice last.
    }
    const outcome = await bluez.verifiedDisconnect(input.adapter, input.address, {
      timeoutMs: deps.disconnectTimeoutMs,
      signal,
    });
    return { outcome };
  };

  /**
   * The teardown, tried up to {@link TEARDOWN_TRIES} times: a Disconnect and its RemoveDevice
   * fallback that both fail (a busy bus or bluetoothd timing out) would otherwise leave the link up
   * in BlueZ for a call that already gave up on it. Stops early once BlueZ shows the link down, and
   * on cancellation, or when bluetoothd or the bus is gone (nothing to send the next try to).
   */
  const verifiedDisconnect = async (
    input: DisconnectInput,
    signal: AbortSignal,
  ): Promise<DisconnectOutput> => {
    for (let tried = 1; ; tried += 1) {
      try {
        return await verifiedDisconnectOnce(input, signal);
      } catch (err) {
        if (isAbortError(err) || signal.aborted || tried >= TEARDOWN_TRIES) throw err;
        if (err instanceof BluezError && err.errorClass === 'bluezGone') throw err;
        // No link, and no Connect of ours still pending that could make one: nothing to retry.
        const linkUp = bluez.device(input.adapter, input.address)?.connected ?? false;
        if (!linkUp && !pendingConnects.has(input.adapter, input.address)) {
          return { outcome: 'notConnected' };
        }
        await sleep(TEARDOWN_RETRY_MS * tried, signal);
      }
    }
  };

  /**
   * Placeholder adapter recovery: a D-Bus power cycle of the adapter in use, verified through the
   * mirror. A pool with a `resetLadder` replaces this actor with the full ladder
   * (src/actors/reset-ladder.ts).
   */
  const resetAdapter = async (input: ResetInput, signal: AbortSignal): Promise<void> => {
    await bluez.setPowered(input.adapter, false, { timeoutMs: deps.disconnectTimeoutMs, signal });
    await bluez.setPowered(input.adapter, true, { timeoutMs: deps.disconnectTimeoutMs, signal });
  };

  const watchLink = async (input: DeviceOnAdapter, signal: AbortSignal): Promise<LinkLossOutput> =>
    // No deadline: it lasts as long as the connection; the machine's AbortSignal ends it.
    bluez.mirror.waitFor(
      (m) => {
        const device = m.device(input.adapter, input.address);
        if (device === undefined) return { reason: `${input.address} is gone from ${input.adapter}` };
        return device.connected ? undefined : { reason: 'Connected=false' };
      },
      {
        signal,
        description: `link loss of ${input.address} on ${input.adapter}`,
        paths: [devicePath(input.adapter, input.address)],
      },
    );

  return {
    acquireDeviceLock,
    inspectDevice,
    cancelStalePendingConnect,
    clearDeviceCache,
    releaseBondedPhantom,
    removePhantom,
    awaitDeviceGone,
    rediscoverDevice,
    findDevice,
    connectWithDeadline,
    waitLinkDown: waitLinkGone,
    validateOnce: (input: ValidateInput, signal: AbortSignal) => validateOnce(deps, input, signal),
    awaitGattSettled,
    verifiedDisconnect,
    resetAdapter,
    watchLink,
  };
}

/** The functions of {@link connectionActorFunctions}. */
export type ConnectionActorFunctions = ReturnType<typeof connectionActorFunctions>;

/**
 * Implementations for `connectionMachine.provide(...)`: the functions as XState actors (each gets
 * the AbortSignal that fires when the machine leaves the state), plus the two runtime actions.
 */
export function connectionActorImplementations(
  deps: ConnectionActorDeps,
  fns: ConnectionActorFunctions = connectionActorFunctions(deps),
) {
  return {
    actors: {
      acquireDeviceLock: fromPromise<LockOutput, LockInput>(({ input, signal }) =>
        fns.acquireDeviceLock(input, signal),
      ),
      inspectDevice: fromPromise<DeviceFinding, InspectInput>(({ input, signal }) =>
        fns.inspectDevice(input, signal),
      ),
      cancelStalePendingConnect: fromPromise<void, DeviceOnAdapter>(({ input, signal }) =>
        fns.cancelStalePendingConnect(input, signal),
      ),
      clearDeviceCache: fromPromise<void, DeviceOnAdapter>(({ input, signal }) =>
        fns.clearDeviceCache(input, signal),
      ),
      releaseBondedPhantom: fromPromise<BondedPhantomOutput, DeviceOnAdapter>(({ input, signal }) =>
        fns.releaseBondedPhantom(input, signal),
      ),
      removePhantom: fromPromise<void, DeviceOnAdapter>(({ input, signal }) =>
        fns.removePhantom(input, signal),
      ),
      awaitDeviceGone: fromPromise<void, DeviceOnAdapter>(({ input, signal }) =>
        fns.awaitDeviceGone(input, signal),
      ),
      rediscoverDevice: fromPromise<ClearPhantomOutput, DeviceOnAdapter>(({ input, signal }) =>
        fns.rediscoverDevice(input, signal),
      ),
      findDevice: fromPromise<void, DeviceOnAdapter>(({ input, signal }) => fns.findDevice(input, signal)),
      connectWithDeadline: fromPromise<void, ConnectInput>(({ input, signal }) =>
        fns.connectWithDeadline(input, signal),
      ),
      waitLinkDown: fromPromise<void, DeviceOnAdapter>(({ input, signal }) =>
        fns.waitLinkDown(input, signal),
      ),
      validateOnce: fromPromise<ValidationCheck, ValidateInput>(({ input, signal }) =>
        fns.validateOnce(input, signal),
      ),
      awaitGattSettled: fromPromise<GattSettleOutput, GattSettleInput>(({ input, signal }) =>
        fns.awaitGattSettled(input, signal),
      ),
      watchCallerSignal: fromCallback<AnyEventObject>(({ sendBack }) => {
        const signal = deps.signal;
        if (signal === undefined) return () => {};
        const cancel = (): void => sendBack({ type: 'CANCEL', reason: 'aborted' });
        if (signal.aborted) {
          cancel();
          return () => {};
        }
        signal.addEventListener('abort', cancel, { once: true });
        return () => signal.removeEventListener('abort', cancel);
      }),
      verifiedDisconnect: fromPromise<DisconnectOutput, DisconnectInput>(({ input, signal }) =>
        fns.verifiedDisconnect(input, signal),
      ),
      resetAdapter: fromPromise<void, ResetInput>(({ input, signal }) => fns.resetAdapter(input, signal)),
      watchLink: fromPromise<LinkLossOutput, DeviceOnAdapter>(({ input, signal }) =>
        fns.watchLink(input, signal),
      ),
      notificationWatchdog: providedWatchdogMachine(deps.bluez),
    },
    actions: {
      releaseDeviceLock: (_: unknown, params: { lease: string | null }) => {
        if (params.lease !== null) deps.leases.release(params.lease);
      },
      shareLedgerChange: (_: unknown, change: LedgerChange) => {
        deps.policy?.apply(change);
      },
    },
  };
}
