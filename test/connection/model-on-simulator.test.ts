/**
 * Model-based, against the simulator: the @xstate/graph paths of test/machines/connection-model.ts
 * are reduced to a set that takes every transition a BlueZ fault can drive, and each path runs on
 * the real actors over a private bus with the fault that drives each step injected just before the
 * actor's D-Bus work starts (every actor waits at a gate until its fault is armed). The actor must
 * rest in exactly the states the model predicts, and the runs together must take every drivable
 * transition.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createActor, setup, type AnyActorRef, type AnyEventObject } from 'xstate';
import {
  connectionActorFunctions,
  connectionActorImplementations,
  rediscover,
  TEARDOWN_TRIES,
  type ConnectionActorFunctions,
} from '../../src/actors/connection-actors.js';
import { busyDeviceLocks } from '../../src/actors/device-lock.js';
import { LeaseBook } from '../../src/actors/lease-book.js';
import { connectionMachine } from '../../src/machines/connection.js';
import type { ConnectionInput } from '../../src/machines/connection-contracts.js';
import { createStateTrail } from '../../src/machines/state-trail.js';
import type { FaultHandle } from '../../src/testing/index.js';
import {
  MODEL_INPUTS,
  allTransitionKeys,
  expectedStates,
  generatePaths,
  replayWithScriptedActors,
  transitionKey,
  type ConnectionSnapshot,
  type ModelPath,
} from '../machines/connection-model.js';
import { bms, eventually, startWorld, type World } from './harness.js';

/**
 * Events a BlueZ fault can produce in a state. Not drivable: the in-process mutex neither degrades
 * nor fails (those transitions wait for the cross-process lock issue); a non-thorough inspection
 * only reads the mirror and cannot fail; a verified disconnect without a link has nothing to fail on.
 */
function drivableEvent(event: AnyEventObject, snapshot: ConnectionSnapshot): boolean {
  if (event.type === 'xstate.done.actor.acquireDeviceLock')
    return !(event.output as { degraded: boolean }).degraded;
  if (event.type === 'xstate.error.actor.acquireDeviceLock') return false;
  if (event.type === 'xstate.error.actor.inspectDevice') return snapshot.context.diagnoseNext;
  // The link watch fails only when the BlueZ client itself is closed under it.
  if (event.type === 'xstate.error.actor.watchLink') return false;
  // A search that gives up on its own ends after rediscoveryTimeoutMs; the model inputs' attempt
  // deadline (400 ms) is shorter, so on the simulator the deadline always ends it first (the
  // xstate.after transition from connecting.searching, also to escalating, is driven instead).
  // The findDevice error itself is covered by test/connection/not-found.test.ts.
  if (event.type === 'xstate.error.actor.findDevice') return false;
  // The overall deadline is a timer, not a fault (the model input's is 60 s; test/connection/cancellation.test.ts
  // drives it on the simulator).
  if (event.type.startsWith('xstate.after.overallDeadline')) return false;
  // Waiting for a GATT change fails only when the BlueZ client itself is closed under it.
  if (event.type === 'xstate.error.actor.awaitGattSettled') return false;
  if (event.type === 'xstate.error.actor.waitLinkDown') return false;
  // The world's device is not paired (test/connection/no-needless-wait.test.ts clears a paired
  // phantom on the simulator); a RemoveDevice that replied leaves no object behind to wait on; a
  // rediscovery fails only when the client is closed under it.
  if (event.type === 'xstate.done.actor.inspectDevice' && (event.output as { paired?: boolean }).paired)
    return false;
  if (event.type === 'xstate.error.actor.awaitDeviceGone') return false;
  if (event.type === 'xstate.error.actor.rediscoverDevice') return false;
  // Backstops behind steps bounded by their own D-Bus deadlines: the step fails first.
  if (event.type.startsWith('xstate.after.phantomStepDeadline')) return false;
  if (event.type.startsWith('xstate.after.rediscoveryDeadline')) return false;
  if (event.type === 'xstate.error.actor.verifiedDisconnect') {
    return (
      snapshot.context.teardown === 'validation-failed' ||
      snapshot.context.teardown === 'requested' ||
      snapshot.context.teardown === 'zombie'
    );
  }
  return true;
}

interface Candidate {
  name: string;
  input: ConnectionInput;
  path: ModelPath;
  keys: Set<string>;
}

// Which transitions each drivable path takes, from the scripted replay (fake timers), then a greedy
// cover: the fewest paths that together take every drivable transition.
vi.useFakeTimers();
const candidates: Candidate[] = [];
const unreachableBySimulator = new Set(allTransitionKeys());
for (const [name, input] of Object.entries(MODEL_INPUTS)) {
  for (const path of generatePaths(input, drivableEvent)) {
    const run = await replayWithScriptedActors(input, path);
    candidates.push({ name, input, path, keys: new Set(run.transitions) });
    for (const key of run.transitions) unreachableBySimulator.delete(key);
  }
}
vi.useRealTimers();
const selected: Candidate[] = [];
{
  const uncovered = new Set(candidates.flatMap((c) => [...c.keys]));
  while (uncovered.size > 0) {
    let best: Candidate | undefined;
    let bestGain = 0;
    for (const c of candidates) {
      const gain = [...c.keys].filter((k) => uncovered.has(k)).length;
      if (
        gain > bestGain ||
        (gain === bestGain && best && gain > 0 && c.path.steps.length < best.path.steps.length)
      ) {
        best = c;
        bestGain = gain;
      }
    }
    if (!best) break;
    selected.push(best);
    for (const k of best.keys) uncovered.delete(k);
  }
}

/** Every actor waits here until the driver has armed the fault for its outcome. */
class Gate {
  readonly #waiting = new Map<string, { input: unknown; release: () => void }>();
  readonly #watchers = new Set<() => void>();

  wait(name: string, input: unknown, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiting.delete(name);
        reject(signal.reason);
      };
      this.#waiting.set(name, {
        input,
        release: () => {
          signal.removeEventListener('abort', onAbort);
          this.#waiting.delete(name);
          resolve();
        },
      });
      signal.addEventListener('abort', onAbort, { once: true });
      for (const w of this.#watchers) w();
    });
  }

  async pending(name: string): Promise<{ input: unknown }> {
    await eventually(`actor ${name} started`, () => this.#waiting.has(name), 10_000);
    const entry = this.#waiting.get(name);
    if (!entry) throw new Error(`gate ${name} vanished`);
    return { input: entry.input };
  }

  release(name: string): void {
    this.#waiting.get(name)?.release();
  }
}

function gated(fns: ConnectionActorFunctions, gate: Gate): ConnectionActorFunctions {
  const wrap =
    <I, O>(name: string, fn: (input: I, signal: AbortSignal) => Promise<O>) =>
    async (input: I, signal: AbortSignal): Promise<O> => {
      await gate.wait(name, input, signal);
      return fn(input, signal);
    };
  return {
    acquireDeviceLock: wrap('acquireDeviceLock', fns.acquireDeviceLock),
    inspectDevice: wrap('inspectDevice', fns.inspectDevice),
    cancelStalePendingConnect: wrap('cancelStalePendingConnect', fns.cancelStalePendingConnect),
    clearDeviceCache: wrap('clearDeviceCache', fns.clearDeviceCache),
    releaseBondedPhantom: wrap('releaseBondedPhantom', fns.releaseBondedPhantom),
    removePhantom: wrap('removePhantom', fns.removePhantom),
    awaitDeviceGone: wrap('awaitDeviceGone', fns.awaitDeviceGone),
    rediscoverDevice: wrap('rediscoverDevice', fns.rediscoverDevice),
    findDevice: wrap('findDevice', fns.findDevice),
    connectWithDeadline: wrap('connectWithDeadline', fns.connectWithDeadline),
    waitLinkDown: wrap('waitLinkDown', fns.waitLinkDown),
    validateOnce: wrap('validateOnce', fns.validateOnce),
    awaitGattSettled: wrap('awaitGattSettled', fns.awaitGattSettled),
    verifiedDisconnect: wrap('verifiedDisconnect', fns.verifiedDisconnect),
    resetAdapter: wrap('resetAdapter', fns.resetAdapter),
    watchLink: fns.watchLink,
  };
}

const covered = new Set<string>();

/** Runs one model path on the real actors against the simulator. */
async function runOnSimulator(input: ConnectionInput, path: ModelPath): Promise<string[]> {
  const address = input.address;
  const world: World = await startWorld({
    adapters: [{ name: 'hci0' }, { name: 'hci1' }],
    devices: [bms(['hci0', 'hci1'], address)],
  });
  const { sim } = world.env;
  const { bluez } = world;
  const faults: FaultHandle[] = [];
  const inject = (...args: Parameters<typeof sim.inject>) => {
    const handle = sim.inject(...args);
    faults.push(handle);
    return handle;
  };
  // The validator's answer: "a characteristic is missing" (false) or a failed read (a throw).
  let failValidation = false;
  let throwInValidator = false;
  // The late-GATT budget as the next check sees it (set by the driver for each check's outcome).
  let lateGatt: number[] = [];
  let addedServices = 0;
  // The slot limit in force (undefined: aborts stay aborts; 0: every RF abort is at the limit).
  let slotLimitNow: number | undefined;
  const gate = new Gate();
  const leases = new LeaseBook();
  const deps = {
    bluez,
    get lateGattDelaysMs() {
      return lateGatt;
    },
    disconnectTimeoutMs: 300,
    rediscoveryTimeoutMs: 1000,
    leases,
    slotLimit: () => slotLimitNow,
    validate: () => {
      if (throwInValidator) throw new Error('read failed');
      return !failValidation;
    },
  };
  // A backoff that the path leaves through an event (CANCEL, QUEUED_FOR_SLOT) is
  // held until that event arrives: with the model's 20 ms backoffs the driver's own work between two
  // steps (e.g. restoring the bus after a hung disconnect) would otherwise outlast it.
  let holdBackoff = false;
  const backoffDelay = connectionMachine.implementations.delays.backoffForErrorClass as (
    args: unknown,
  ) => number;
  const machine = connectionMachine.provide({
    ...(connectionActorImplementations(deps, gated(connectionActorFunctions(deps), gate)) as object),
    delays: { backoffForErrorClass: (args: unknown) => (holdBackoff ? 600_000 : backoffDelay(args)) },
  } as never);
  const trail = createStateTrail();
  const parent = setup({ actors: { device: machine } }).createMachine({
    invoke: { id: 'device', src: 'device', input },
    on: { ROTATION_REQUESTED: {} },
  });
  const root = createActor(parent, { inspect: trail.inspect });
  root.subscribe({ error: () => {} });
  root.start();
  const device = root.getSnapshot().children['device'] as AnyActorRef;
  const snapshot = () => device.getSnapshot() as ConnectionSnapshot;
  const adapterOf = (x: unknown) => (x as { adapter: string }).adapter;

  try {
    for (let i = 1; i < path.steps.length; i++) {
      const step = path.steps[i]!;
      const event = step.event as AnyEventObject;
      // The event that leaves this backoff (ADAPTER_ASSIGNED in backoff only adopts the adapter).
      const leaving = path.steps.slice(i + 1).find((s) => !s.state.matches({ establishing: 'backoff' }))
        ?.event as AnyEventObject | undefined;
      holdBackoff =
        step.state.matches({ establishing: 'backoff' }) &&
        leaving !== undefined &&
        !leaving.type.startsWith('xstate.after.backoffForErrorClass');
      const actorEvent = /^xstate\.(done|error)\.actor\.(.+)$/.exec(event.type);
      let restore: (() => Promise<void>) | undefined;
      if (event.type === 'xstate.done.actor.watchLink') {
        // The remote end drops the link; the real watcher sees Connected=false.
        sim.dropLink(address);
      } else if (actorEvent) {
        const [, kind, name] = actorEvent as unknown as [string, 'done' | 'error', string];
        const { input: callInput } = await gate.pending(name);
        const adapter = adapterOf(callInput);
        switch (`${kind}:${name}`) {
          case 'done:inspectDevice': {
            const finding = event.output as { connected: boolean; servicesResolved: boolean };
            const known = async () => {
              const ok = await rediscover(bluez, adapter, address, 5000, AbortSignal.timeout(6000));
              if (!ok) throw new Error(`${address} not rediscovered on ${adapter}`);
            };
            if (
              bluez.device(adapter, address)?.connected &&
              !(finding.connected && finding.servicesResolved && !bluez.isPhantom(adapter, address))
            ) {
              await bluez.verifiedDisconnect(adapter, address, { timeoutMs: 2000 });
            }
            if (finding.connected && !finding.servicesResolved) {
              await known();
              sim.inject({ kind: 'phantom', target: { device: address, adapter } }).clear();
              await eventually('phantom in the mirror', () => bluez.isPhantom(adapter, address));
            } else if (finding.connected && !bluez.device(adapter, address)?.servicesResolved) {
              // A stale pending connect armed by an earlier step (a path can reach here straight
              // from InProgress, e.g. through a reset) would refuse the link the path wants up.
              for (const f of faults) if (f.spec.kind === 'stale-in-progress') f.clear();
              await known();
              await bluez.connect(adapter, address, { waitServicesResolved: true, timeoutMs: 5000 });
            }
            break;
          }
          case 'error:inspectDevice': {
            const off = inject({ kind: 'power-off', target: { adapter } });
            await eventually('adapter off', () => bluez.mirror.adapter(adapter)?.powered === false);
            restore = async () => {
              off.clear();
              await eventually('adapter on', () => bluez.mirror.adapter(adapter)?.powered === true);
            };
            break;
          }
          case 'error:cancelStalePendingConnect':
            // A hung Disconnect needs a Device1 to hang on: after a power cycle removed the
            // (temporary) device, bring it back first.
            if (bluez.device(adapter, address) === undefined) {
              const ok = await rediscover(bluez, adapter, address, 5000, AbortSignal.timeout(6000));
              if (!ok) throw new Error(`${address} not rediscovered on ${adapter}`);
            }
            inject({
              kind: 'hang',
              target: { device: address },
              interface: 'org.bluez.Device1',
              member: 'Disconnect',
              count: 1,
            });
            restore = async () => {
              for (const f of faults) if (f.spec.kind === 'stale-in-progress') f.clear();
            };
            break;
          case 'error:clearDeviceCache':
            // Nothing to remove (and so nothing to fail) after a power cycle removed the device:
            // bring it back first, as for a hung cancel.
            if (bluez.device(adapter, address) === undefined) {
              const ok = await rediscover(bluez, adapter, address, 5000, AbortSignal.timeout(6000));
              if (!ok) throw new Error(`${address} not rediscovered on ${adapter}`);
            }
            sim.setInRange(address, false);
            restore = async () => sim.setInRange(address, true);
            break;
          case 'error:removePhantom':
            inject({
              kind: 'hang',
              target: { adapter },
              interface: 'org.bluez.Adapter1',
              member: 'RemoveDevice',
              count: 1,
            });
            break;
          case 'done:connectWithDeadline':
            for (const f of faults) if (f.spec.kind === 'stale-in-progress') f.clear();
            break;
          case 'error:connectWithDeadline': {
            const failure = event.error as { errorClass: string; slotLimit?: number };
            const cls = failure.errorClass;
            if (cls === 'aborted') {
              // Up briefly (the link-down deadline is driven by holding waitLinkDown instead).
              inject({ kind: 'rf-abort', target: { device: address }, count: 1, linkUpMs: 10 });
              if (failure.slotLimit !== undefined) {
                // The adapter's links are at the limit in force: the abort is a slot refusal.
                slotLimitNow = 0;
                restore = async () => {
                  slotLimitNow = undefined;
                };
              }
            } else if (cls === 'notFound') {
              // The object goes away between the search and the Connect.
              await bluez.removeDevice(adapter, address, { timeoutMs: 2000 });
              await eventually('device removed', () => bluez.device(adapter, address) === undefined);
            } else if (cls === 'inProgress')
              inject({ kind: 'stale-in-progress', target: { device: address } });
            else
              inject({
                kind: 'fail-connect',
                target: { device: address },
                count: 1,
                errorName: 'org.bluez.Error.Failed',
                message: 'No available connection slot',
              });
            break;
          }
          case 'done:validateOnce': {
            // Passed, or something missing with the late-GATT budget allowing a wait (the next
            // checkpoint 1 s from now) or spent.
            const check = event.output as { passed: boolean; nextCheckInMs: number | null };
            failValidation = !check.passed;
            const startedAt = (callInput as { startedAt: number }).startedAt;
            lateGatt = check.nextCheckInMs === null ? [] : [Date.now() - startedAt + 1000];
            break;
          }
          case 'error:validateOnce':
            throwInValidator = true;
            restore = async () => {
              throwInValidator = false;
            };
            break;
          case 'done:awaitGattSettled': {
            const outcome = (event.output as { outcome: string }).outcome;
            gate.release(name);
            // A Service Changed (a service the peripheral grows) settles well within the 1 s wait;
            // a dropped link ends the wait at once.
            if (outcome === 'settled') {
              sim.addService(address, {
                uuid: `0000ff${String(10 + addedServices++).padStart(2, '0')}-0000-1000-8000-00805f9b34fb`,
                characteristics: [],
              });
            } else sim.dropLink(address);
            break;
          }
          case 'error:verifiedDisconnect':
            // Every try of the teardown fails (it is retried: TEARDOWN_TRIES).
            inject({
              kind: 'hang',
              target: { device: address },
              interface: 'org.bluez.Device1',
              member: 'Disconnect',
              count: TEARDOWN_TRIES,
            });
            inject({
              kind: 'hang',
              target: { adapter },
              interface: 'org.bluez.Adapter1',
              member: 'RemoveDevice',
              count: TEARDOWN_TRIES,
            });
            restore = async () => {
              await bluez.verifiedDisconnect(adapter, address, { timeoutMs: 2000 }).catch(() => {});
            };
            break;
          case 'error:resetAdapter':
            inject({
              kind: 'hang',
              target: { adapter },
              interface: 'org.freedesktop.DBus.Properties',
              member: 'Set',
              count: 1,
            });
            break;
          default:
            break; // the real actor's natural outcome is the one the path wants
        }
        gate.release(name);
      } else if (event.type.startsWith('xstate.after.linkDownDeadline')) {
        // The link stays up past the deadline: waitLinkDown is held until the deadline aborts it.
        await gate.pending('waitLinkDown');
      } else if (
        event.type.startsWith('xstate.after.attemptDeadline') &&
        path.steps[i - 1]?.state.matches({ establishing: { validating: 'checking' } })
      ) {
        // A validator that never resolves: validateOnce stays held until the deadline aborts it.
        await gate.pending('validateOnce');
      } else if (
        event.type.startsWith('xstate.after.attemptDeadline') &&
        path.steps[i - 1]?.state.matches({ establishing: { connecting: 'searching' } })
      ) {
        // The search outlasts the attempt: findDevice stays held until the deadline aborts it.
        await gate.pending('findDevice');
      } else if (event.type.startsWith('xstate.after.attemptDeadline')) {
        await gate.pending('connectWithDeadline');
        inject({
          kind: 'hang',
          target: { device: address },
          interface: 'org.bluez.Device1',
          member: 'Connect',
          count: 1,
        });
        gate.release('connectWithDeadline');
      } else if (event.type.startsWith('xstate.after.')) {
        // backoff: time passes
      } else {
        device.send(event);
      }
      const want = JSON.stringify([step.state.value, step.state.status]);
      await eventually(
        `state ${want} after ${event.type} (at ${JSON.stringify(snapshot().value)}; trail ${trail.states.join(' → ')})`,
        () => JSON.stringify([snapshot().value, snapshot().status]) === want,
        10_000,
      );
      await restore?.();
    }
    return trail.settled;
  } finally {
    root.stop();
    for (const t of trail.transitions) covered.add(transitionKey(t));
    leases.releaseAll();
    await world.stop();
  }
}

describe('model paths on the simulator', () => {
  it('every transition except lock degraded/failed, a failing link, GATT or discovery watch, a search giving up before the deadline, the backstop deadlines, a paired phantom and the 60 s overall deadline can be driven by a BlueZ fault', () => {
    expect([...unreachableBySimulator].sort()).toEqual([
      // With keep-alive a failing watch starts a reconnect run, else the actor is idle.
      'connection.connected | xstate.error.actor.watchLink | #0 → connection.establishing.backoff',
      'connection.connected | xstate.error.actor.watchLink | #1 → connection.idle',
      // A timer (test/connection/cancellation.test.ts drives overallTimeoutMs on the simulator).
      'connection.disconnecting | xstate.after.overallDeadline.connection.disconnecting | #0',
      'connection.establishing | xstate.after.overallDeadline.connection.establishing | #0 → connection.disconnecting',
      'connection.establishing | xstate.after.overallDeadline.connection.establishing | #1 → connection.failed',
      // The link-down wait fails only when the client is closed under it.
      'connection.establishing.connecting.awaiting-link-down | xstate.error.actor.waitLinkDown | #0 → connection.establishing.connecting.classifying-abort',
      'connection.establishing.connecting.searching | xstate.error.actor.findDevice | #0 → connection.establishing.escalating',
      'connection.establishing.locking | xstate.done.actor.acquireDeviceLock | #0 → connection.establishing.clearing-stale',
      'connection.establishing.locking | xstate.error.actor.acquireDeviceLock | #0 → connection.failed',
      'connection.establishing.locking | xstate.error.actor.acquireDeviceLock | #1 → connection.establishing.escalating',
      // Backstops behind steps with their own D-Bus deadlines, and waits that fail only on a closed
      // client (a RemoveDevice that replied leaves no object to wait on).
      'connection.establishing.phantom.awaiting-removal | xstate.after.phantomStepDeadline.connection.establishing.phantom.awaiting-removal | #0 → connection.establishing.escalating',
      'connection.establishing.phantom.awaiting-removal | xstate.error.actor.awaitDeviceGone | #0 → connection.establishing.escalating',
      // The shared world's device is not paired: test/connection/no-needless-wait.test.ts clears a
      // paired phantom on the simulator (a bounded Disconnect first, then RemoveDevice).
      'connection.establishing.phantom.deciding | (always) | #1 → connection.establishing.phantom.releasing-bond',
      'connection.establishing.phantom.rediscovering | xstate.after.rediscoveryDeadline.connection.establishing.phantom.rediscovering | #0 → connection.establishing.connecting',
      'connection.establishing.phantom.rediscovering | xstate.error.actor.rediscoverDevice | #0 → connection.establishing.escalating',
      'connection.establishing.phantom.releasing-bond | xstate.after.phantomStepDeadline.connection.establishing.phantom.releasing-bond | #0 → connection.establishing.escalating',
      'connection.establishing.phantom.releasing-bond | xstate.done.actor.releaseBondedPhantom | #0 → connection.establishing.connecting',
      'connection.establishing.phantom.releasing-bond | xstate.done.actor.releaseBondedPhantom | #1 → connection.establishing.phantom.awaiting-removal',
      'connection.establishing.phantom.releasing-bond | xstate.done.actor.releaseBondedPhantom | #2 → connection.establishing.phantom.rediscovering',
      'connection.establishing.phantom.releasing-bond | xstate.error.actor.releaseBondedPhantom | #0 → connection.establishing.escalating',
      'connection.establishing.phantom.removing | xstate.after.phantomStepDeadline.connection.establishing.phantom.removing | #0 → connection.establishing.escalating',
      'connection.establishing.validating.waiting-for-late-gatt | xstate.error.actor.awaitGattSettled | #0 → connection.disconnecting',
    ]);
    expect(selected.length).toBeGreaterThan(5);
  });

  for (const [index, candidate] of selected.entries()) {
    const description = expectedStates(candidate.path).join(' → ');
    it(`path ${index + 1} (${candidate.name}): ${description}`, async () => {
      const settled = await runOnSimulator(candidate.input, candidate.path);
      // After the last step the actor runs on until it is stopped (e.g. out of backoff).
      expect(settled.slice(0, expectedStates(candidate.path).length)).toEqual(expectedStates(candidate.path));
      expect(busyDeviceLocks()).toEqual([]);
    }, 30_000);
  }

  afterAll(() => {
    const drivableKeys = allTransitionKeys().filter((k) => !unreachableBySimulator.has(k));
    const missing = drivableKeys.filter((k) => !covered.has(k));
    expect(missing, `transitions the simulator runs never took:\n${missing.join('\n')}`).toEqual([]);
  });
});
