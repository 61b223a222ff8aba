/**
 * The public entry points: `createConnectionActor` (the running XState actor, for people who want
 * snapshots, events and the inspector) and `establishConnection` (a promise of a
 * {@link ManagedConnection}, for everyone else).
 */
import { createActor, type Actor } from 'xstate';
import { openBluez } from '../bluez/client.js';
import type { BluezClient } from '../bluez/client-types.js';
import { AdapterError } from '../bluez/errors.js';
import type { NodeBleDevice, NodeBleGattServer } from '../bluez/node-ble.js';
import { nodeBleDevice, nodeBleGattServer } from '../bluez/node-ble-view.js';
import { connectionActorImplementations } from '../actors/connection-actors.js';
import { adaptersByKnowledge, locateDevice } from '../actors/locate-device.js';
import { LeaseBook } from '../actors/lease-book.js';
import { seenRecently } from '../discovery/find-device.js';
import { connectionMachine } from '../machines/connection.js';
import { StallGuard, type EventLoopDelay } from '../stall-guard/stall-guard.js';
import type { ConnectionAttempt } from '../machines/connection-contracts.js';
import { topLevelState } from '../machines/state-trail.js';
import { typedRejection } from './typed-rejection.js';
import {
  resolveOptions,
  type ConnectionActorOptions,
  type EstablishOptions,
  type ResolvedOptions,
} from './options.js';

/** The running connection actor (XState). Send `CONNECT`, `DISCONNECT`; read snapshots; inspect. */
export type ConnectionActor = Actor<typeof connectionMachine>;

/** States in which a connection is being established (cancellation and overallTimeoutMs apply). */
function establishing(snapshot: ReturnType<ConnectionActor['getSnapshot']>): boolean {
  if (snapshot.status !== 'active') return false;
  const state = topLevelState(snapshot.value);
  if (state === 'idle' || state === 'connected') return false;
  return !(state === 'disconnecting' && snapshot.context.teardown === 'requested');
}

/**
 * Adapters to rotate through: the given ones, else every adapter; those that know the device first,
 * strongest recent sighting first (an adapter that cannot hear it would burn a whole attempt).
 */
function chooseAdapters(bluez: BluezClient, resolved: ResolvedOptions): string[] {
  const known = bluez.adapters().map((a) => a.name);
  if (resolved.adapters !== undefined) {
    if (bluez.mirror.bluezReady) {
      resolved.adapters.forEach((name, i) => {
        if (!known.includes(name)) {
          throw new TypeError(
            `adapters[${i}] "${name}" is not an adapter BlueZ knows (known: ${known.join(', ') || 'none'})`,
          );
        }
      });
    }
    return adaptersByKnowledge(bluez, resolved.adapters, resolved.address);
  }
  if (known.length === 0) {
    throw new AdapterError('BlueZ reports no adapters: plug one in, or check `bluetoothctl list`', {
      device: resolved.address,
    });
  }
  return adaptersByKnowledge(bluez, known, resolved.address);
}

/**
 * The rotation order for the first attempt. A device no adapter knows is looked for on all of them
 * at once (bounded by rediscoveryTimeoutMs, and overallTimeoutMs when shorter); the first adapter
 * that sees it goes first. Without this the first attempt could go to an adapter that cannot hear
 * the device and spend its whole attemptTimeoutMs rediscovering there.
 */
async function firstAttemptOrder(bluez: BluezClient, resolved: ResolvedOptions): Promise<string[]> {
  const order = chooseAdapters(bluez, resolved);
  if (order.length < 2 || order.some((a) => seenRecently(bluez.device(a, resolved.address)))) return order;
  const timeoutMs = Math.min(resolved.rediscoveryTimeoutMs, resolved.overallTimeoutMs ?? Infinity);
  const signal = resolved.signal ?? new AbortController().signal;
  let seenOn: string | undefined;
  try {
    seenOn = await locateDevice(bluez, order, resolved.address, timeoutMs, signal, resolved.discovery);
  } catch (err) {
    if (signal.aborted) throw abortError(signal);
    throw err;
  }
  return seenOn === undefined ? order : [seenOn, ...order.filter((a) => a !== seenOn)];
}

/**
 * Creates and starts the connection actor (docs/architecture.md) for one device, in `idle`. Send
 * `{ type: 'CONNECT' }` to connect. The caller's `signal` and `overallTimeoutMs` end establishing
 * with an AbortError/TimeoutError through the machine's cancellation path (both are handled by its
 * `establishing` state); stopping the actor
 * releases the device lock in any state. Throws TypeError/RangeError for bad options, before any I/O.
 */
export function createConnectionActor(options: ConnectionActorOptions): ConnectionActor {
  const resolved = resolveOptions(options);
  const bluez = options.bluez;
  if (typeof bluez !== 'object' || bluez === null || typeof bluez.connect !== 'function') {
    throw new TypeError('bluez must be a BluezClient from openBluez()');
  }
  const adapters = chooseAdapters(bluez, resolved);
  const leases = new LeaseBook();
  const { logger, signal } = resolved;
  const fields = { address: resolved.address };
  // Started only when enabled; stopped with the actor (cleanup below).
  const stallGuard =
    resolved.stallGuardMs === null
      ? undefined
      : StallGuard.start({
          busAddress: bluez.busAddress,
          stallGuardMs: resolved.stallGuardMs,
          disconnectTimeoutMs: resolved.disconnectTimeoutMs,
          onError: (error) =>
            logger.error?.(
              fields,
              `the stall guard's worker failed; connects are not guarded: ${error.message}`,
            ),
          onStall: (stall) =>
            logger.warn?.(
              { ...fields, adapter: stall.adapter, stalledMs: stall.stalledMs },
              `event loop blocked for ${stall.stalledMs} ms while connecting on ${stall.adapter}: the stall guard sent Disconnect (${stall.disconnect}) and released ${stall.locksReleased} slot lock(s)`,
            ),
        });
  const implementations = connectionActorImplementations({
    bluez,
    validate: resolved.validate,
    lateGattDelaysMs: resolved.lateGattDelaysMs,
    disconnectTimeoutMs: resolved.disconnectTimeoutMs,
    rediscoveryTimeoutMs: resolved.rediscoveryTimeoutMs,
    leases,
    policy: resolved.policy,
    slotLimit: () => resolved.slotsPerAdapter,
    stallGuard,
    slotLock: resolved.lock,
    discovery: resolved.discovery,
    // The machine's `establishing` turns its abort into CANCEL (watchCallerSignal).
    signal,
  });
  const machine = connectionMachine.provide(implementations);
  const actor: ConnectionActor = createActor(machine, {
    input: {
      address: resolved.address,
      adapters,
      maxAttempts: resolved.maxAttempts,
      attemptTimeoutMs: resolved.attemptTimeoutMs,
      closeInactiveConnections: resolved.closeInactiveConnections,
      escalation: resolved.escalation,
      ledger: resolved.policy?.snapshot(),
      backoffMs: resolved.backoffMs,
      watchdog: resolved.watchdog,
      keepAlive: resolved.keepAlive,
      // The machine's own `after overallDeadline`, per establishing run.
      overallTimeoutMs: resolved.overallTimeoutMs ?? null,
      // Bounds the wait for an RF-aborted link to drop (connecting.awaiting-link-down).
      disconnectTimeoutMs: resolved.disconnectTimeoutMs,
      // Bounds the rediscovery after a phantom's RemoveDevice (phantom.rediscovering).
      rediscoveryTimeoutMs: resolved.rediscoveryTimeoutMs,
    },
    inspect: options.inspect,
  });

  const offs = [
    actor.on('lock-degraded', (e) =>
      logger.warn?.(
        { ...fields, adapter: e.adapter, waitedMs: e.waitedMs },
        `no connection slot free on ${e.adapter} within ${Math.round(e.waitedMs)} ms; going on without one`,
      ),
    ),
    actor.on('phantom-left-alone', (e) =>
      logger.warn?.(
        { ...fields, adapter: e.adapter },
        `phantom connection on ${e.adapter} (Connected without ServicesResolved) left alone; set closeInactiveConnections to clear it`,
      ),
    ),
    actor.on('escalation', (e) =>
      logger.info?.(
        { ...fields, adapter: e.adapter, action: e.action, failures: e.failures },
        `escalation after ${e.failures} failure(s) on ${e.adapter}: ${e.action}`,
      ),
    ),
    actor.on('zombie', (e) =>
      logger.warn?.(
        { ...fields, adapter: e.adapter, silenceMs: e.silenceMs, action: e.action },
        `zombie link on ${e.adapter}: Connected but no data for ${e.silenceMs} ms (timeout ${e.timeoutMs} ms); ${e.action}`,
      ),
    ),
    actor.on('link-lost', (e) =>
      logger.warn?.(
        { ...fields, adapter: e.adapter, reason: e.reason },
        `link lost on ${e.adapter}: ${e.reason}`,
      ),
    ),
  ];

  let lastState = '';
  let cleaned = false;
  const cleanup = (): void => {
    if (cleaned) return;
    cleaned = true;
    for (const off of offs) off.unsubscribe();
    // Whatever state the actor was stopped in, no lock outlives it.
    leases.releaseAll();
    void stallGuard?.close();
  };
  actor.subscribe({
    next(snapshot) {
      const state = topLevelState(snapshot.value);
      if (state !== lastState) {
        logger.debug?.(
          { ...fields, adapter: snapshot.context.adapter, from: lastState || 'start', to: state },
          `${lastState || 'start'} → ${state}`,
        );
        lastState = state;
      }
      if (snapshot.status !== 'active') cleanup();
    },
    error: cleanup,
    complete: cleanup,
  });
  if (stallGuard !== undefined) stallGuards.set(actor, stallGuard);
  actor.start();
  return actor;
}

const stallGuards = new WeakMap<ConnectionActor, StallGuard>();

/**
 * The stall guard of an actor made with `stallGuardMs` (undefined otherwise): its event-loop delay
 * figures, and `close()`, which resolves once its worker has exited (stopping the actor starts that).
 */
export function stallGuardOf(actor: ConnectionActor): StallGuard | undefined {
  return stallGuards.get(actor);
}

/** One attempt as reported on a {@link ManagedConnection}. */
export interface AttemptReport {
  readonly number: number;
  readonly adapter: string;
  readonly durationMs: number | null;
  readonly outcome: ConnectionAttempt['outcome'];
  /** `null` for the successful attempt. */
  readonly cause: ConnectionAttempt['cause'];
}

/** How and why a managed connection ended for good ({@link ManagedConnection.closed}). */
export interface ConnectionClosed {
  /**
   * `disconnected`: `disconnect()` was called; `link-lost` / `zombie`: the link ended and keep-alive
   * is off (or the zombie action is `disconnect`); `gave-up`: keep-alive ran out of attempts
   * (`error` lists them) or a reconnect was cancelled; `stopped`: the actor was stopped directly.
   */
  readonly reason: 'disconnected' | 'link-lost' | 'zombie' | 'gave-up' | 'stopped';
  /** The final error for `gave-up`, else null. */
  readonly error: Error | null;
  /** The attempts of the last run (a link-end record, number 0, first when it was a reconnect run). */
  readonly attempts: readonly ConnectionAttempt[];
}

/** A connected, validated device. */
export interface ManagedConnection {
  /** Device address (upper-case). */
  readonly address: string;
  /** Adapter the connection runs on now (a keep-alive reconnect may move it). */
  readonly adapter: string;
  /**
   * Resolves (never rejects) when the library has given up on this connection: after
   * `disconnect()`, after a link loss or a zombie without keep-alive, or when keep-alive ran out of
   * attempts.
   */
  readonly closed: Promise<ConnectionClosed>;
  /**
   * Tells the watchdog that data arrived by a path it does not see (a polled read, an AcquireNotify
   * fd). Notifications through BlueZ are seen without it.
   */
  notifyActivity(): void;
  /**
   * The event loop's delay (perf_hooks.monitorEventLoopDelay) and the stalls the guard handled, when
   * `stallGuardMs` is on; null otherwise.
   */
  eventLoopDelay(): EventLoopDelay | null;
  /** Every attempt it took, with cause, adapter and duration. */
  readonly attempts: readonly AttemptReport[];
  /**
   * node-ble's Device on our shared bus (don't call its connect/disconnect; use `disconnect()`).
   * Built without a D-Bus round trip; node-ble makes its proxy on the first call.
   */
  readonly device: NodeBleDevice;
  /**
   * node-ble's GattServer interface, answered from the library's mirror of BlueZ's object tree:
   * `services()` and `getPrimaryService()` cost no round trip and show the services exported at the
   * time of the call (a service added later by a Service Changed included); characteristics are
   * node-ble's own objects, made on first request.
   */
  readonly gatt: NodeBleGattServer;
  /** The connection actor (snapshots, LINK_LOST → idle, inspection). */
  readonly actor: ConnectionActor;
  /** The BlueZ client in use. */
  readonly bluez: BluezClient;
  /**
   * Verified disconnect (bounded), then stops the actor and closes the BlueZ client if it was opened
   * for this connection. Safe to call twice.
   */
  disconnect(): Promise<void>;
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason instanceof Error && signal.reason.name === 'AbortError'
    ? signal.reason
    : new DOMException('connecting was aborted', 'AbortError');
}

/** Resolves when the actor reaches a state matching `done`; rejects never (the caller checks). */
function waitForActor(
  actor: ConnectionActor,
  done: (s: ReturnType<ConnectionActor['getSnapshot']>) => boolean,
) {
  return new Promise<ReturnType<ConnectionActor['getSnapshot']>>((resolve) => {
    const check = (s: ReturnType<ConnectionActor['getSnapshot']>): boolean => {
      if (!done(s)) return false;
      resolve(s);
      return true;
    };
    if (check(actor.getSnapshot())) return;
    const sub = actor.subscribe({
      next: (s) => {
        if (check(s)) sub.unsubscribe();
      },
      complete: () => resolve(actor.getSnapshot()),
      error: () => resolve(actor.getSnapshot()),
    });
  });
}

/**
 * Connects `options.address` with every workaround of the connection machine (docs/architecture.md)
 * and resolves with a {@link ManagedConnection}; rejects with a `ConnectionFailedError` listing each
 * attempt's cause and adapter (whatever failed, src/connection/typed-rejection.ts), with an
 * AbortError/TimeoutError DOMException for `signal`/`overallTimeoutMs`, or with a TypeError/RangeError
 * for bad options.
 */
export async function establishConnection(options: EstablishOptions): Promise<ManagedConnection> {
  const resolved = resolveOptions(options); // validates before any I/O
  if (resolved.signal?.aborted) throw abortError(resolved.signal);
  const ownBluez = options.bluez === undefined;
  const bluez =
    options.bluez ??
    (await openBluez({
      busAddress: options.busAddress,
      authMethods: options.authMethods,
      signal: options.signal,
    }).catch((err: unknown) => {
      throw typedRejection(err, resolved.address, [], undefined);
    }));
  let actor: ConnectionActor | undefined;
  try {
    const order = await firstAttemptOrder(bluez, resolved);
    // An adapter may be unplugged while the device is looked for: the order was checked before
    // that, so rotate over the adapters BlueZ still has rather than fail the caller's input check.
    const present = bluez.adapters().map((a) => a.name);
    const adapters = bluez.mirror.bluezReady ? order.filter((a) => present.includes(a)) : order;
    if (adapters.length === 0) {
      throw new AdapterError(
        `every adapter to try (${order.join(', ')}) was removed while looking for the device`,
        {
          device: resolved.address,
        },
      );
    }
    actor = createConnectionActor({ ...options, bluez, adapters });
    actor.send({ type: 'CONNECT' });
    const snapshot = await waitForActor(actor, (s) => s.status !== 'active' || s.value === 'connected');
    if (snapshot.status === 'done') throw snapshot.output.error;
    if (snapshot.status !== 'active') {
      throw snapshot.error instanceof Error
        ? snapshot.error
        : new Error('connection actor stopped', { cause: snapshot.error });
    }
    const adapter = snapshot.context.adapter;
    // No round trip between `connected` and resolve: node-ble's objects are built from what the
    // mirror already holds (src/bluez/node-ble-view.ts) instead of node-ble's introspection.
    const bus = bluez.nodeBle().dbus;
    const device = nodeBleDevice(bus, adapter, snapshot.context.address);
    const gatt = nodeBleGattServer(bus, bluez.mirror, adapter, snapshot.context.address);
    const running = actor;
    let disconnecting: Promise<void> | undefined;
    let requested = false;
    const closed = waitForActor(running, (s) => s.status !== 'active' || s.value === 'idle').then(
      (s): ConnectionClosed => {
        const attempts = s.context.attempts;
        if (s.status === 'done') return { reason: 'gave-up', error: s.output.error, attempts };
        if (requested) return { reason: 'disconnected', error: null, attempts };
        if (s.status !== 'active')
          return { reason: 'stopped', error: s.error instanceof Error ? s.error : null, attempts };
        const zombie = attempts[attempts.length - 1]?.cause?.class === 'zombie';
        return { reason: zombie ? 'zombie' : 'link-lost', error: null, attempts };
      },
    );
    return {
      address: snapshot.context.address,
      get adapter() {
        return running.getSnapshot().context.adapter;
      },
      closed,
      notifyActivity() {
        running.send({ type: 'ACTIVITY' });
      },
      eventLoopDelay() {
        return stallGuardOf(running)?.eventLoopDelay() ?? null;
      },
      attempts: snapshot.context.attempts.map((a) => ({
        number: a.number,
        adapter: a.adapter,
        durationMs: a.durationMs,
        outcome: a.outcome,
        cause: a.cause,
      })),
      device,
      gatt,
      actor: running,
      bluez,
      disconnect() {
        disconnecting ??= (async () => {
          requested = true;
          try {
            if (running.getSnapshot().value === 'connected') {
              running.send({ type: 'DISCONNECT' });
              await waitForActor(running, (s) => s.status !== 'active' || s.value === 'idle');
            } else if (establishing(running.getSnapshot())) {
              // A keep-alive reconnect is running: cancel it through the machine, which tears down
              // a pending connect on the adapter in use.
              running.send({ type: 'CANCEL', reason: 'aborted' });
              await waitForActor(running, (s) => s.status !== 'active' || s.value === 'idle');
            }
          } finally {
            running.stop();
            // No worker, timer or bus connection of the stall guard outlives the connection.
            await stallGuardOf(running)?.close();
            if (ownBluez) await bluez.close();
          }
        })();
        return disconnecting;
      },
    };
  } catch (err) {
    if (actor !== undefined) {
      // Connected, but the connection could not be handed over: do not leave the link behind.
      if (actor.getSnapshot().value === 'connected') {
        actor.send({ type: 'DISCONNECT' });
        await waitForActor(actor, (s) => s.status !== 'active' || s.value === 'idle');
      }
      actor.stop();
      await stallGuardOf(actor)?.close();
    }
    if (ownBluez) await bluez.close().catch(() => {});
    // Every rejection is a library error listing its attempts (cancellation and bad input aside).
    const context = actor?.getSnapshot().context;
    throw typedRejection(err, resolved.address, context?.attempts ?? [], context?.adapter);
  }
}
