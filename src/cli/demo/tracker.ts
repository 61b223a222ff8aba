/**
 * What the demo shows, collected from the library's public observation points only: the XState
 * inspection stream of the pool's connection actors (state names, adapter, attempts with causes)
 * and the pool's emitted events and snapshot (queue, slots). It never reaches into the pool's
 * internals, so it works whether the pool keeps one actor per device or replaces it.
 */
import type { InspectionEvent, StateValue } from 'xstate';
import { topLevelState } from '../../machines/state-trail.js';
import type { ConnectionAttempt, PoolEmitted, PoolSnapshot } from '../../index.js';
import type { ConnectionContext } from '../../machines/index.js';

/** One state change of a device's connection actor. */
export interface StateChange {
  readonly at: number;
  readonly address: string;
  readonly from: string;
  readonly to: string;
  readonly adapter: string;
  /** Attempt number within the current connect cycle (0 before the first). */
  readonly attempt: number;
}

/** What the demo knows about one device. */
export interface DeviceView {
  readonly address: string;
  /** Connection actor state, or the pool's `queued` while the device waits for a slot. */
  state: string;
  adapter: string | null;
  /** Every attempt of every connect cycle, keyed by actor session and attempt start. */
  readonly attempts: Map<string, ConnectionAttempt>;
  /** Times the device reached `connected`. */
  connects: number;
  linkLosses: number;
  rotations: string[];
  /** Times the pool put it back in the queue (no adapter that sees it had a free slot). */
  requeues: number;
  /** The latest notable thing (a cause, an escalation, a pool decision). */
  note: string;
  /** Attempt number within the current cycle. */
  cycleAttempt: number;
  /** Every state path the device's actors were in (`clearing-stale.cancelling-stale-connect`). */
  readonly visited: Set<string>;
  /** Longest stay in `validating` that ended connected (late GATT re-checks make it long). */
  longestValidatingMs: number;
  /** When the current stay in `validating` began. */
  validatingSince: number | null;
  /** Epoch ms from which attempts count toward the current connection (after the last connect). */
  episodeStart: number;
  /** The next attempt starts a new episode. */
  episodeStartNext: boolean;
}

interface SnapshotLike {
  value?: unknown;
  status?: string;
  context?: Partial<ConnectionContext>;
  machine?: { id?: string };
}

/** `{ 'clearing-stale': 'inspecting' }` → `clearing-stale.inspecting`. */
export function statePath(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) {
    const [key, inner] = Object.entries(value)[0] ?? [];
    if (key === undefined) return '';
    // `establishing` only frames the steps of a run (src/machines/state-trail.ts): show the step.
    if (key === 'establishing') return statePath(inner);
    const rest = statePath(inner);
    return rest === '' ? key : `${key}.${rest}`;
  }
  return '';
}

function topState(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) return topLevelState(value as StateValue);
  return '';
}

/** Short text of an attempt's cause: `aborted (le-connection-abort-by-local)`. */
export function causeText(a: ConnectionAttempt): string {
  if (a.cause === null) return a.outcome === 'connected' ? (a.adopted ? 'ok (adopted)' : 'ok') : a.outcome;
  const detail = a.cause.dbusName?.startsWith('org.bluez.Error.Failed')
    ? (/le-connection-abort-by-local|br-connection-canceled|Software caused connection abort/.exec(
        a.cause.message,
      )?.[0] ?? a.cause.code)
    : a.cause.code;
  return `${a.cause.class} (${detail})`;
}

/** Collects device views and state changes; `onChange` is called after every change. */
export class DemoTracker {
  readonly devices = new Map<string, DeviceView>();
  readonly changes: StateChange[] = [];
  readonly poolEvents: Array<{ at: number; event: PoolEmitted }> = [];
  /** Highest number of links the pool held per adapter at any time. */
  readonly peakInUse = new Map<string, number>();
  private readonly lastState = new Map<string, string>();
  private readonly t0 = Date.now();

  constructor(
    addresses: readonly string[],
    private readonly connectionMachineId: string,
    private readonly onChange: (kind: 'state' | 'pool', detail: StateChange | PoolEmitted) => void,
  ) {
    for (const address of addresses) {
      this.devices.set(address, {
        address,
        state: 'new',
        adapter: null,
        attempts: new Map(),
        connects: 0,
        linkLosses: 0,
        rotations: [],
        requeues: 0,
        note: '',
        cycleAttempt: 0,
        visited: new Set(),
        longestValidatingMs: 0,
        validatingSince: null,
        episodeStart: 0,
        episodeStartNext: false,
      });
    }
  }

  /** Milliseconds since the tracker started. */
  elapsed(): number {
    return Date.now() - this.t0;
  }

  /** The pool's `inspect` option. */
  readonly inspect = (event: InspectionEvent): void => {
    if (event.type !== '@xstate.microstep' && event.type !== '@xstate.snapshot') return;
    const snapshot = event.snapshot as SnapshotLike;
    if (snapshot.machine?.id !== this.connectionMachineId) return;
    const context = snapshot.context;
    const address = context?.address;
    if (address === undefined) return;
    const view = this.devices.get(address);
    if (view === undefined) return;
    const session = event.actorRef.sessionId;
    for (const a of context?.attempts ?? []) {
      const key = `${session}:${a.startedAt}:${a.number}`;
      if (!view.attempts.has(key) && view.episodeStartNext) {
        view.episodeStart = a.startedAt;
        view.episodeStartNext = false;
      }
      view.attempts.set(key, a);
    }
    const last = context?.attempts?.[context.attempts.length - 1];
    if (last?.cause && last.outcome === 'failed') {
      view.note = `#${last.number} ${causeText(last)}${last.escalation ? ` → ${last.escalation}` : ''}`;
    }
    if (snapshot.status === 'error' || snapshot.status === 'stopped') return;
    const state = topState(snapshot.value);
    if (state === '') return;
    view.visited.add(statePath(snapshot.value));
    const key = `${session}`;
    const previous = this.lastState.get(key) ?? view.state;
    this.lastState.set(key, state);
    if (previous === state) return;
    const adapter = context?.adapter ?? view.adapter ?? '';
    view.state = state;
    view.adapter = adapter;
    view.cycleAttempt = context?.attempts?.length ?? 0;
    const now = this.elapsed();
    if (previous === 'validating' && state === 'connected' && view.validatingSince !== null) {
      view.longestValidatingMs = Math.max(view.longestValidatingMs, now - view.validatingSince);
      view.validatingSince = null;
    }
    view.validatingSince = state === 'validating' ? now : null;
    if (state === 'connected') {
      view.connects += 1;
      view.episodeStartNext = true;
      // Counted over every actor and cycle: the pool may have replaced the actor meanwhile.
      const n = [...view.attempts.values()].filter((a) => a.startedAt >= view.episodeStart).length;
      view.note =
        view.connects > 1
          ? `reconnected after a link loss (${view.connects - 1}×)`
          : n > 1
            ? `connected after ${n} attempts`
            : 'connected at the first attempt';
    }
    const change: StateChange = {
      at: now,
      address,
      from: previous,
      to: state,
      adapter,
      attempt: view.cycleAttempt,
    };
    this.changes.push(change);
    this.onChange('state', change);
  };

  /** Feed of the pool's emitted events (`pool.actor.on('*', …)`). */
  poolEvent(event: PoolEmitted, snapshot: PoolSnapshot): void {
    this.poolEvents.push({ at: this.elapsed(), event });
    this.updatePeaks(snapshot);
    const view = 'address' in event ? this.devices.get(event.address) : undefined;
    switch (event.type) {
      case 'device-queued':
        if (view) {
          view.state = view.state === 'new' || view.state === 'idle' ? 'queued' : view.state;
          view.note = 'waiting for a free slot';
        }
        break;
      case 'device-requeued':
        if (view) {
          view.requeues += 1;
          view.note = `back in the queue: ${event.reason}`;
        }
        break;
      case 'device-assigned':
        if (view) view.note = `assigned to ${event.adapter}`;
        break;
      case 'device-rotated':
        if (view) {
          view.rotations.push(`${event.from}→${event.to}`);
          view.note = `rotated ${event.from} → ${event.to}`;
        }
        break;
      case 'device-link-lost':
        if (view) {
          view.linkLosses += 1;
          view.note = `link lost on ${event.adapter}`;
        }
        break;
      case 'device-failed':
        if (view) view.state = 'failed';
        break;
      default:
        break;
    }
    this.onChange('pool', event);
  }

  /** Records the slots in use now (peaks for the summary). */
  updatePeaks(snapshot: PoolSnapshot): void {
    for (const a of snapshot.adapters) {
      this.peakInUse.set(a.name, Math.max(this.peakInUse.get(a.name) ?? 0, a.inUse.length));
    }
  }

  /** A device's attempts in the order they started. */
  attemptsOf(address: string): ConnectionAttempt[] {
    const view = this.devices.get(address);
    if (view === undefined) return [];
    return [...view.attempts.values()]
      .filter((a) => a.outcome !== 'pending')
      .sort((a, b) => a.startedAt - b.startedAt || a.number - b.number);
  }
}
