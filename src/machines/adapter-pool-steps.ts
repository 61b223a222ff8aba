/**
 * What the adapter pool does on each event, as pure functions: (context, event) → the next context,
 * the commands for its children (spawn, send, stop) and the events it emits. The machine in
 * adapter-pool.ts names each step as an action and turns the commands into XState actions; tests
 * can call the steps directly.
 */
import type {
  ConnectionExternalEvent,
  ConnectionInput,
  ConnectionReport,
  FailureClass,
  RotationRequest,
} from './connection-contracts.js';
import { adapterActorId, type AdapterInput, type AdapterStatus, type LimitReprobeReport } from './adapter.js';
import {
  NO_USE,
  adaptersForDevice,
  chooseAdapter,
  freeSlots,
  holdsSlot,
  lessonFromRefusal,
  lessonFromSuccess,
  realLinksBesides,
  slotsInUse,
  usableAdapters,
  type AdapterUse,
  type RefusalLesson,
  type PoolAdapter,
  type PoolDevice,
  type PoolDeviceSettings,
  type PoolView,
  type Sightings,
} from './adapter-pool-logic.js';
import { PersistentTable } from './persistent-table.js';

/** Context of the pool machine (plain data; the inspector shows it). */
export interface PoolContext extends PoolView {
  /** Next queue ticket (FIFO order of the queue). */
  readonly nextTicket: number;
  /** How long a learned slot limit holds before the configured one is tried again. */
  readonly limitReprobeMs: number;
  /**
   * Queued devices started (assigned an adapter) per turn at most, or null for no bound; a turn
   * ends with NEXT_TURN, raised after a zero delay by the turn's first start.
   */
  readonly startsPerTurn: number | null;
  /** Devices started in the current turn. */
  readonly startedThisTurn: number;
}

/** A command for the children, carried out by the machine. */
export type PoolCommand =
  | { readonly kind: 'spawn'; readonly childId: string; readonly input: ConnectionInput }
  | { readonly kind: 'send'; readonly childId: string; readonly event: ConnectionExternalEvent }
  | { readonly kind: 'stop'; readonly childId: string }
  /** A new adapter actor (an Adapter1 the pool had not seen). */
  | { readonly kind: 'spawn-adapter'; readonly childId: string; readonly input: AdapterInput }
  /** What changed about an adapter in this step, for its actor. */
  | { readonly kind: 'adapter-status'; readonly childId: string; readonly status: AdapterStatus }
  /** End the current turn after a zero delay (NEXT_TURN): the next macrotask may start more devices. */
  | { readonly kind: 'next-turn' };

/** Events the pool emits for observers (`pool.on(type, …)`). */
export type PoolEmitted =
  | { type: 'device-queued'; address: string }
  | { type: 'device-assigned'; address: string; adapter: string }
  | { type: 'device-connected'; address: string; adapter: string }
  | { type: 'device-link-lost'; address: string; adapter: string }
  | { type: 'device-rotated'; address: string; from: string; to: string; failureClass: FailureClass | null }
  | { type: 'device-requeued'; address: string; from: string; reason: string }
  /** Its child waits out a backoff: the slot on `adapter` is free meanwhile. */
  | { type: 'device-parked'; address: string; adapter: string }
  /** `cause` is the child's final error (ConnectionFailedError, AbortError, or what crashed it). */
  | { type: 'device-failed'; address: string; error: string; cause: unknown }
  | { type: 'device-removed'; address: string }
  | { type: 'slot-limit-learned'; adapter: string; limit: number }
  /** A learned limit was dropped: its time ran out, or the controller held more links than it. */
  | { type: 'slot-limit-forgotten'; adapter: string; reason: string };

/** A report of a child other than a rotation request. */
export type ChildReport = Exclude<ConnectionReport, RotationRequest>;

/** Events of the pool machine. */
export type PoolEvent =
  | { type: 'CONNECT_DEVICE'; address: string; settings: PoolDeviceSettings; keepAlive: boolean }
  | { type: 'DISCONNECT_DEVICE'; address: string }
  | { type: 'ADAPTER_PRESENT'; name: string; powered: boolean }
  | { type: 'ADAPTER_GONE'; name: string }
  | { type: 'BLUEZ_DOWN' }
  | { type: 'BLUEZ_UP' }
  | { type: 'SIGHTINGS'; address: string; sightings: Sightings }
  /** Other processes' connect attempts under way on adapter `name` (their slot locks) changed. */
  | { type: 'ADAPTER_FOREIGN_ATTEMPTS'; name: string; count: number }
  /** The devices BlueZ shows connected on adapter `name` changed (any process's links). */
  | { type: 'ADAPTER_LINKS'; name: string; connected: readonly string[] }
  /** Links that came up (`up`) or went down (`down`) on adapter `name` since the last report. */
  | { type: 'LINKS_CHANGED'; name: string; up: readonly string[]; down: readonly string[] }
  /** The pool's own: a turn ended (see {@link PoolContext.startsPerTurn}); queued devices may start. */
  | { type: 'NEXT_TURN' }
  /** From an adapter actor: its learned limit has held for `limitReprobeMs`, try the configured one. */
  | LimitReprobeReport
  /** From the children themselves (sendParent), see {@link ConnectionReport}. */
  | ConnectionReport;

/** Result of one step. */
export interface StepResult {
  readonly context: PoolContext;
  readonly commands: readonly PoolCommand[];
  readonly emitted: readonly PoolEmitted[];
}

/** A mutable working copy of one step. */
class Draft {
  adapters: Record<string, PoolAdapter>;
  private devs: PersistentTable<PoolDevice>;
  sightings: PersistentTable<Sightings>;
  private linkSets: Record<string, PersistentTable<true>>;
  private use: Record<string, AdapterUse>;
  /** The queue, copied on its first change in this step. */
  private queueCopy: string[] | null = null;
  foreignAttempts: Record<string, number>;
  lastChosen: string | null;
  bluezUp: boolean;
  nextTicket: number;
  startedThisTurn: number;
  readonly commands: PoolCommand[] = [];
  readonly emitted: PoolEmitted[] = [];

  // Only tables keyed by adapter are copied (a handful of entries); the devices and sightings are
  // persistent tables and the index is patched for the devices this step changes.
  constructor(readonly base: PoolContext) {
    this.adapters = { ...base.adapters };
    this.devs = base.devices;
    this.sightings = base.sightings;
    this.linkSets = { ...base.links };
    this.use = { ...base.index.use };
    this.foreignAttempts = { ...base.foreignAttempts };
    this.lastChosen = base.lastChosen;
    this.bluezUp = base.bluezUp;
    this.nextTicket = base.nextTicket;
    this.startedThisTurn = base.startedThisTurn;
  }

  ticket(): number {
    this.nextTicket += 1;
    return this.nextTicket;
  }

  get view(): PoolContext {
    return {
      ...this.base,
      adapters: this.adapters,
      devices: this.devs,
      sightings: this.sightings,
      links: this.linkSets,
      foreignAttempts: this.foreignAttempts,
      lastChosen: this.lastChosen,
      bluezUp: this.bluezUp,
      nextTicket: this.nextTicket,
      startedThisTurn: this.startedThisTurn,
      index: { use: this.use, queue: this.queueCopy ?? this.base.index.queue },
    };
  }

  device(address: string): PoolDevice | undefined {
    return this.devs.get(address);
  }

  /** Every device, in the order they joined (a whole-table operation: rare events only). */
  allDevices(): PoolDevice[] {
    return this.devs.values();
  }

  /** Queued devices' addresses, oldest first (a copy). */
  queued(): string[] {
    return [...(this.queueCopy ?? this.base.index.queue)];
  }

  /** Adds, replaces or (undefined) removes a device, keeping the index up to date. */
  setDevice(address: string, next: PoolDevice | undefined): void {
    const prev = this.devs.get(address);
    this.account(prev, -1);
    this.account(next, 1);
    this.devs = next === undefined ? this.devs.delete(address) : this.devs.set(address, next);
    const wasQueued = prev?.status === 'queued';
    const isQueued = next?.status === 'queued';
    const sameTicket = prev?.ticket === next?.ticket;
    if (wasQueued && !(isQueued && sameTicket)) this.unqueue(address);
    if (next !== undefined && isQueued && !(wasQueued && sameTicket)) this.queueIn(next);
  }

  patch(address: string, patch: Partial<PoolDevice>): void {
    const d = this.devs.get(address);
    if (d !== undefined) this.setDevice(address, { ...d, ...patch });
  }

  patchAdapter(name: string, patch: Partial<PoolAdapter>): void {
    const a = this.adapters[name];
    if (a !== undefined) this.adapters[name] = { ...a, ...patch };
  }

  /** BlueZ's links on `adapter` (undefined: none known) as a whole: O(links on that adapter). */
  setLinks(adapter: string, connected: readonly string[] | undefined): void {
    const before = this.linkSets[adapter] ?? PersistentTable.empty<true>();
    const now = new Set(connected ?? []);
    const down = before.keys().filter((address) => !now.has(address));
    const up = [...now].filter((address) => !before.has(address));
    this.changeLinks(adapter, up, down);
    if (connected === undefined) delete this.linkSets[adapter];
  }

  /** Links that came up or went down on `adapter`: O(changes), the index's overlap kept. */
  changeLinks(adapter: string, up: readonly string[], down: readonly string[]): void {
    let links = this.linkSets[adapter] ?? PersistentTable.empty<true>();
    let overlap = 0;
    const holdsHere = (address: string): boolean => {
      const d = this.devs.get(address);
      return d !== undefined && d.adapter === adapter && holdsSlot(d);
    };
    for (const address of down) {
      if (!links.has(address)) continue;
      links = links.delete(address);
      if (holdsHere(address)) overlap -= 1;
    }
    for (const address of up) {
      if (links.has(address)) continue;
      links = links.set(address, true);
      if (holdsHere(address)) overlap += 1;
    }
    this.linkSets[adapter] = links;
    if (overlap !== 0) {
      const use = this.use[adapter] ?? NO_USE;
      this.use[adapter] = { ...use, heldLinked: use.heldLinked + overlap };
    }
  }

  /** Links BlueZ shows on `adapter` now. */
  linkCount(adapter: string): number {
    return this.linkSets[adapter]?.size ?? 0;
  }

  /** Every adapter's links forgotten (bluetoothd went away). */
  clearLinks(): void {
    for (const adapter of Object.keys(this.linkSets)) this.setLinks(adapter, undefined);
  }

  private account(d: PoolDevice | undefined, sign: 1 | -1): void {
    if (d === undefined) return;
    if (d.adapter !== null && holdsSlot(d)) {
      const use = this.use[d.adapter] ?? NO_USE;
      const linked = this.linkSets[d.adapter]?.has(d.address) === true ? sign : 0;
      this.use[d.adapter] = { ...use, held: use.held + sign, heldLinked: use.heldLinked + linked };
    }
    if (d.recoveringOn !== null) {
      const use = this.use[d.recoveringOn] ?? NO_USE;
      this.use[d.recoveringOn] = { ...use, recovering: use.recovering + sign };
    }
  }

  private mutableQueue(): string[] {
    this.queueCopy ??= [...this.base.index.queue];
    return this.queueCopy;
  }

  private unqueue(address: string): void {
    const queue = this.mutableQueue();
    const at = queue.indexOf(address);
    if (at >= 0) queue.splice(at, 1);
  }

  /** Into the queue by ticket: at the end for a new ticket (the usual case). */
  private queueIn(d: PoolDevice): void {
    const queue = this.mutableQueue();
    const ticketAt = (i: number): number => this.devs.get(queue[i] ?? '')?.ticket ?? 0;
    let lo = 0;
    let hi = queue.length;
    if (hi > 0 && ticketAt(hi - 1) < d.ticket) lo = hi;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ticketAt(mid) < d.ticket) lo = mid + 1;
      else hi = mid;
    }
    queue.splice(lo, 0, d.address);
  }

  remove(address: string): void {
    const d = this.devs.get(address);
    if (d === undefined) return;
    if (d.childId !== null) this.commands.push({ kind: 'stop', childId: d.childId });
    this.setDevice(address, undefined);
    this.emitted.push({ type: 'device-removed', address });
  }

  send(childId: string, event: ConnectionExternalEvent): void {
    this.commands.push({ kind: 'send', childId, event });
  }

  enqueue(address: string): void {
    this.patch(address, { status: 'queued', adapter: null, recoveringOn: null, ticket: this.ticket() });
    this.emitted.push({ type: 'device-queued', address });
  }

  /**
   * Tells the child to wait for a slot (QUEUED_FOR_SLOT): it tears its attempt down and parks in
   * `waiting-for-slot`; the slot is freed when it reports that it is waiting.
   */
  requeue(address: string, reason: string): void {
    const d = this.devs.get(address);
    if (d === undefined || d.childId === null) return;
    this.patch(address, { status: 'requeueing' });
    this.send(d.childId, { type: 'QUEUED_FOR_SLOT', reason });
    this.emitted.push({ type: 'device-requeued', address, from: d.adapter ?? '', reason });
  }

  /**
   * Whether one more queued device may start now: at most `startsPerTurn` per turn (the first start
   * of a turn schedules NEXT_TURN, which ends it), so that a thousand devices asked for at once do
   * not all start in one macrotask.
   */
  mayStart(): boolean {
    return this.base.startsPerTurn === null || this.startedThisTurn < this.base.startsPerTurn;
  }

  /** Counts a start against this turn. */
  started(): void {
    if (this.base.startsPerTurn === null) return;
    if (this.startedThisTurn === 0) this.commands.push({ kind: 'next-turn' });
    this.startedThisTurn += 1;
  }

  /** Spawns a fresh (idle) connection actor for the device; returns its id. */
  spawnFor(address: string, adapterHint?: string): string {
    const d = this.devs.get(address);
    if (d === undefined) throw new Error(`spawnFor: unknown device ${address}`);
    const spawns = d.spawns + 1;
    const childId = childIdOf(address, spawns);
    const hint = adapterHint ?? usableAdapters(this.view)[0] ?? Object.keys(this.adapters)[0] ?? 'hci0';
    this.patch(address, { spawns, childId, waiting: false, recoveringOn: null });
    this.commands.push({
      kind: 'spawn',
      childId,
      input: {
        address,
        // The pool assigns the adapter of each attempt (ADAPTER_ASSIGNED); this is only the start value.
        adapters: [hint],
        pooled: true,
        // A backoff holds no slot: the pool gives it to a waiting device meanwhile.
        parkDuringBackoff: true,
        maxAttempts: d.settings.maxAttempts,
        attemptTimeoutMs: d.settings.attemptTimeoutMs,
        closeInactiveConnections: d.settings.closeInactiveConnections,
        escalation: d.settings.escalation,
        backoffMs: d.settings.backoffMs,
        watchdog: d.settings.watchdog ?? null,
        ...(d.settings.disconnectTimeoutMs === undefined
          ? {}
          : { disconnectTimeoutMs: d.settings.disconnectTimeoutMs }),
        ...(d.settings.rediscoveryTimeoutMs === undefined
          ? {}
          : { rediscoveryTimeoutMs: d.settings.rediscoveryTimeoutMs }),
      },
    });
    return childId;
  }

  result(): StepResult {
    const context = this.view;
    const commands = [...this.commands];
    // The adapter actors hear what this step changed about their adapter (and new ones are spawned).
    for (const name of Object.keys(context.adapters)) {
      const now = adapterStatus(context, name);
      const childId = adapterActorId(name);
      if (this.base.adapters[name] === undefined) {
        commands.push({
          kind: 'spawn-adapter',
          childId,
          input: { name, limitReprobeMs: context.limitReprobeMs, status: now },
        });
      } else if (!sameStatus(adapterStatus(this.base, name), now)) {
        commands.push({ kind: 'adapter-status', childId, status: now });
      }
    }
    return { context, commands, emitted: this.emitted };
  }
}

/** What the pool knows about adapter `name` (the figures its adapter actor's states follow). */
export function adapterStatus(view: PoolContext, name: string): AdapterStatus {
  const a = view.adapters[name];
  return {
    present: a?.present ?? false,
    powered: a?.powered ?? false,
    resets: (view.index.use[name] ?? NO_USE).recovering,
    inUse: slotsInUse(view, name),
    configuredLimit: view.slotsPerAdapter,
    learnedLimit: a?.learnedLimit ?? null,
    suspectedLimit: a?.suspectedLimit ?? null,
  };
}

function sameStatus(a: AdapterStatus, b: AdapterStatus): boolean {
  return (
    a.present === b.present &&
    a.powered === b.powered &&
    a.resets === b.resets &&
    a.inUse === b.inUse &&
    a.configuredLimit === b.configuredLimit &&
    a.learnedLimit === b.learnedLimit &&
    a.suspectedLimit === b.suspectedLimit
  );
}

/** The id of the n-th child of `address`. */
export function childIdOf(address: string, spawn: number): string {
  return `device:${address}#${spawn}`;
}

/** The address in a child id made by {@link childIdOf}, or null for another id. */
export function addressOfChild(childId: string): string | null {
  const hash = childId.lastIndexOf('#');
  return childId.startsWith('device:') && hash > 7 ? childId.slice(7, hash) : null;
}

/**
 * Gives queued devices a slot, oldest first: assigns the adapter to its child, and tells an idle
 * child to CONNECT (a child in `waiting-for-slot` starts on ADAPTER_ASSIGNED alone). A device no
 * adapter can take stays queued, its child idle or waiting.
 */
function dispatch(draft: Draft): void {
  if (draft.queued().length === 0) return;
  for (const address of startCandidates(draft)) {
    if (!draft.mayStart()) return;
    const d = draft.device(address);
    if (d === undefined || d.status !== 'queued') continue;
    const view = draft.view;
    const adapter = preferredAdapter(view, d) ?? chooseAdapter(view, d.address);
    if (adapter === null) continue;
    draft.started();
    draft.lastChosen = adapter;
    const childId = d.childId ?? draft.spawnFor(d.address, adapter);
    const waiting = d.childId !== null && d.waiting;
    draft.patch(d.address, {
      status: 'connecting',
      adapter,
      waiting: false,
      parkedFrom: null,
      tookLentSlot: false,
    });
    draft.send(childId, { type: 'ADAPTER_ASSIGNED', adapter });
    if (!waiting) draft.send(childId, { type: 'CONNECT' });
    draft.emitted.push({ type: 'device-assigned', address: d.address, adapter });
  }
}

/**
 * The queued devices that may find a slot, oldest first. With a free slot on some usable adapter,
 * the whole queue. With every usable adapter full, only a queued device BlueZ shows linked on one
 * of them can start (its own link frees its slot there): those are found from the links, a few per
 * adapter, so that a saturated pool does not walk a long queue on every event.
 */
function startCandidates(draft: Draft): string[] {
  const view = draft.view;
  const usable = usableAdapters(view);
  if (usable.some((a) => freeSlots(view, a) > 0)) return draft.queued();
  const linked = new Set<string>();
  for (const a of usable) for (const address of view.links[a]?.keys() ?? []) linked.add(address);
  const ticketOf = (address: string): number => draft.device(address)?.ticket ?? 0;
  return [...linked]
    .filter((address) => draft.device(address)?.status === 'queued')
    .sort((x, y) => ticketOf(x) - ticketOf(y));
}

/**
 * A device back from a parked backoff goes on where it was when that adapter still sees it and has
 * a free slot: its escalation (rotation, reset) stays the child's decision, not the round-robin's.
 */
function preferredAdapter(view: PoolContext, d: PoolDevice): string | null {
  const from = d.parkedFrom;
  if (from === null) return null;
  return adaptersForDevice(view, d.address).includes(from) && freeSlots(view, from, d.address) > 0
    ? from
    : null;
}

function finish(draft: Draft): StepResult {
  dispatch(draft);
  return draft.result();
}

/** A device to connect: queued, then dispatched. Already managed → keep-alive is switched on again. */
export function admitDevice(
  context: PoolContext,
  event: Extract<PoolEvent, { type: 'CONNECT_DEVICE' }>,
): StepResult {
  const draft = new Draft(context);
  const existing = draft.device(event.address);
  if (existing === undefined || existing.status === 'failed') {
    draft.setDevice(event.address, {
      address: event.address,
      status: 'queued',
      adapter: null,
      childId: null,
      waiting: false,
      recoveringOn: null,
      parkedFrom: null,
      tookLentSlot: false,
      spawns: existing?.spawns ?? 0,
      keepAlive: event.keepAlive,
      settings: event.settings,
      error: null,
      ticket: draft.ticket(),
    });
    draft.spawnFor(event.address);
    draft.emitted.push({ type: 'device-queued', address: event.address });
  } else {
    draft.patch(event.address, { keepAlive: event.keepAlive });
  }
  return finish(draft);
}

/** A requested disconnect: verified teardown for a connected child, cancellation for one still connecting. */
export function releaseDevice(
  context: PoolContext,
  event: Extract<PoolEvent, { type: 'DISCONNECT_DEVICE' }>,
): StepResult {
  const draft = new Draft(context);
  const d = draft.device(event.address);
  if (d === undefined) return draft.result();
  switch (d.status) {
    case 'queued':
    case 'failed':
      draft.remove(d.address);
      break;
    case 'connected':
      draft.patch(d.address, { status: 'disconnecting', keepAlive: false });
      if (d.childId !== null) draft.send(d.childId, { type: 'DISCONNECT' });
      break;
    case 'connecting':
    case 'requeueing':
    case 'parked':
      draft.patch(d.address, { status: 'disconnecting', keepAlive: false });
      if (d.childId !== null) draft.send(d.childId, { type: 'CANCEL', reason: 'aborted' });
      break;
    case 'disconnecting':
      break;
  }
  return finish(draft);
}

/**
 * A child running the recovery ladder is left to finish it whatever happens to its adapter or to
 * bluetoothd meanwhile: the ladder itself powers the adapter off, re-authorizes the USB device
 * (the adapter disappears) or restarts bluetoothd (org.bluez goes away), and its steps wait
 * (bounded) for them to come back. Moving or parking the child would stop the ladder half-way, an
 * adapter left powered off or a restart cut short. The pool looks at it again when the ladder
 * reports its end ({@link childResetting}).
 */
function isRecovering(d: PoolDevice): boolean {
  return d.recoveringOn !== null;
}

/** Sends a device that is connecting on `from` to another adapter that sees it, or parks it. */
function moveAway(draft: Draft, d: PoolDevice, from: string, why: string): void {
  if (d.childId === null) return;
  const to = chooseAdapter(draft.view, d.address, [from]);
  if (to !== null) {
    draft.patch(d.address, { adapter: to });
    draft.send(d.childId, { type: 'ADAPTER_ASSIGNED', adapter: to });
    draft.emitted.push({ type: 'device-rotated', address: d.address, from, to, failureClass: null });
  } else {
    draft.requeue(d.address, why);
  }
}

/** Moves devices still connecting on `adapter` elsewhere (or back to the queue). Connected ones lose their link by themselves. */
function evacuate(draft: Draft, adapter: string, why: string): void {
  for (const d of draft.allDevices()) {
    if (d.adapter !== adapter || d.status !== 'connecting' || d.childId === null) continue;
    if (isRecovering(d)) continue;
    moveAway(draft, d, adapter, why);
  }
}

/** Applies what a connect taught about `adapter`'s limit; a newly learned limit is re-probed later. */
function learn(draft: Draft, adapter: string, lesson: RefusalLesson, why: string): void {
  const before = draft.adapters[adapter];
  if (before === undefined) return;
  draft.patchAdapter(adapter, lesson);
  const limit = lesson.learnedLimit;
  if (limit === undefined || limit === before.learnedLimit) return;
  if (limit === null) {
    draft.emitted.push({ type: 'slot-limit-forgotten', adapter, reason: why });
    return;
  }
  // Not for ever: a controller that refused under load (or a run of radio trouble that happened to
  // line up) would otherwise keep its slots from the pool until it is re-plugged. The adapter actor
  // enters `limit.learned` with this step's status and asks for a re-probe when its time is up.
  draft.emitted.push({ type: 'slot-limit-learned', adapter, limit });
}

/** An adapter appeared (plugged in, bluetoothd back) or changed power. */
export function adapterPresent(
  context: PoolContext,
  event: Extract<PoolEvent, { type: 'ADAPTER_PRESENT' }>,
): StepResult {
  const draft = new Draft(context);
  const known = draft.adapters[event.name];
  if (known === undefined || !known.present) {
    // A fresh controller (or a replugged one) starts without a learned limit.
    draft.adapters[event.name] = {
      name: event.name,
      present: true,
      powered: event.powered,
      learnedLimit: null,
      suspectedLimit: null,
      recentFailures: 0,
    };
  } else {
    draft.patchAdapter(event.name, { powered: event.powered });
  }
  if (!event.powered) evacuate(draft, event.name, `${event.name} powered off`);
  return finish(draft);
}

/** An adapter disappeared (USB unplug, bluetoothd gone). */
export function adapterGone(
  context: PoolContext,
  event: Extract<PoolEvent, { type: 'ADAPTER_GONE' }>,
): StepResult {
  const draft = new Draft(context);
  draft.patchAdapter(event.name, { present: false, powered: false });
  draft.setLinks(event.name, undefined);
  evacuate(draft, event.name, `${event.name} removed`);
  return finish(draft);
}

/**
 * org.bluez lost its owner: nothing can connect until it is back; connecting children wait in the
 * queue, except one whose recovery ladder may be the very thing restarting bluetoothd.
 */
export function bluezDown(context: PoolContext): StepResult {
  const draft = new Draft(context);
  draft.bluezUp = false;
  draft.clearLinks();
  for (const a of Object.values(draft.adapters))
    draft.patchAdapter(a.name, { present: false, powered: false });
  for (const d of draft.allDevices()) {
    if (d.status === 'connecting' && !isRecovering(d)) draft.requeue(d.address, 'bluetoothd went away');
  }
  return draft.result();
}

/** org.bluez is back and the mirror rebuilt (adapters follow as ADAPTER_PRESENT). */
export function bluezUp(context: PoolContext): StepResult {
  const draft = new Draft(context);
  draft.bluezUp = true;
  return finish(draft);
}

/** Where BlueZ sees a device changed. */
export function updateSightings(
  context: PoolContext,
  event: Extract<PoolEvent, { type: 'SIGHTINGS' }>,
): StepResult {
  const draft = new Draft(context);
  draft.sightings = draft.sightings.set(event.address, event.sightings);
  return finish(draft);
}

/**
 * The links BlueZ shows on an adapter changed: another service connected or let a link go (a freed
 * slot goes to the oldest waiting device), or one of ours came up or went down.
 */
export function adapterLinks(
  context: PoolContext,
  event: Extract<PoolEvent, { type: 'ADAPTER_LINKS' }>,
): StepResult {
  const draft = new Draft(context);
  draft.setLinks(event.name, event.connected);
  forgetLimitBelowLinks(draft, event.name);
  return finish(draft);
}

/** Links came up or went down on an adapter (what changed since the last report): as {@link adapterLinks}. */
export function linksChanged(
  context: PoolContext,
  event: Extract<PoolEvent, { type: 'LINKS_CHANGED' }>,
): StepResult {
  const draft = new Draft(context);
  draft.changeLinks(event.name, event.up, event.down);
  forgetLimitBelowLinks(draft, event.name);
  return finish(draft);
}

/** BlueZ shows more links on `adapter` than its learned limit: the limit was wrong. */
function forgetLimitBelowLinks(draft: Draft, adapter: string): void {
  const learned = draft.adapters[adapter]?.learnedLimit ?? null;
  const links = draft.linkCount(adapter);
  if (learned !== null && links > learned) {
    learn(
      draft,
      adapter,
      { learnedLimit: null, suspectedLimit: null },
      `${adapter} holds ${links} links, more than the learned ${learned}`,
    );
  }
}

/**
 * Another process started or ended a connect attempt on an adapter (its slot lock): that attempt
 * takes a controller slot now, and a freed one goes to the oldest waiting device.
 */
export function foreignAttempts(
  context: PoolContext,
  event: Extract<PoolEvent, { type: 'ADAPTER_FOREIGN_ATTEMPTS' }>,
): StepResult {
  const draft = new Draft(context);
  if (event.count > 0) draft.foreignAttempts[event.name] = event.count;
  else delete draft.foreignAttempts[event.name];
  return finish(draft);
}

/** A turn ended: queued devices held back by {@link PoolContext.startsPerTurn} may start now. */
export function nextTurn(context: PoolContext): StepResult {
  const draft = new Draft(context);
  draft.startedThisTurn = 0;
  return finish(draft);
}

/** A learned limit's time is up: the configured limit is tried again (a refusal teaches it anew). */
export function limitReprobe(context: PoolContext, event: LimitReprobeReport): StepResult {
  const draft = new Draft(context);
  if ((draft.adapters[event.name]?.learnedLimit ?? null) === null) return draft.result();
  learn(
    draft,
    event.name,
    { learnedLimit: null, suspectedLimit: null },
    `re-probing after ${context.limitReprobeMs} ms`,
  );
  return finish(draft);
}

/** A child connected: the slot it was assigned is now a link. */
export function childConnected(
  context: PoolContext,
  event: Extract<ChildReport, { type: 'CHILD_CONNECTED' }>,
): StepResult {
  const draft = new Draft(context);
  const d = draft.device(event.address);
  if (d === undefined || d.childId === null) return draft.result();
  draft.patch(d.address, { waiting: false });
  // `requeueing`: the link came up before the child read QUEUED_FOR_SLOT; it keeps the slot.
  const a = draft.adapters[event.adapter];
  if (a !== undefined) {
    const links = realLinksBesides(draft.view, event.adapter, d.address);
    learn(
      draft,
      event.adapter,
      lessonFromSuccess(a, links),
      `${event.adapter} took a link at ${links} others`,
    );
  }
  if (d.status === 'connecting' || d.status === 'requeueing' || d.status === 'parked') {
    draft.patch(d.address, { status: 'connected', adapter: event.adapter, parkedFrom: null });
    draft.patchAdapter(event.adapter, { recentFailures: 0 });
    draft.emitted.push({ type: 'device-connected', address: d.address, adapter: event.adapter });
  }
  return finish(draft);
}

/**
 * A child is idle again: its link was lost (Connected=false, the object or bluetoothd went away) or
 * a verified disconnect finished. Either way the slot is free.
 */
export function childWentIdle(
  context: PoolContext,
  event: Extract<ChildReport, { type: 'CHILD_LINK_LOST' | 'CHILD_IDLE' }>,
): StepResult {
  const draft = new Draft(context);
  const d = draft.device(event.address);
  if (d === undefined || d.childId === null) return draft.result();
  draft.patch(d.address, { waiting: false, recoveringOn: null });
  if (d.status === 'connected') {
    draft.emitted.push({ type: 'device-link-lost', address: d.address, adapter: d.adapter ?? event.adapter });
    if (d.keepAlive) draft.enqueue(d.address);
    else draft.remove(d.address);
  } else if (d.status === 'disconnecting') {
    draft.remove(d.address);
  }
  return finish(draft);
}

/**
 * A child's attempt failed on an adapter: it counts against that adapter in the score, and a
 * refused link may teach the controller's limit (from the real links, see lessonFromRefusal).
 */
export function childAttemptFailed(
  context: PoolContext,
  event: Extract<ChildReport, { type: 'CHILD_ATTEMPT_FAILED' }>,
): StepResult {
  const draft = new Draft(context);
  const a = draft.adapters[event.adapter];
  if (a === undefined) return draft.result();
  draft.patchAdapter(a.name, { recentFailures: a.recentFailures + 1 });
  const lesson = lessonFromRefusal(
    draft.view,
    a.name,
    event.address,
    event.failureClass,
    event.linksOnAdapter,
  );
  learn(draft, a.name, lesson, 'refused link');
  // Not found on its adapter while another one hears it (its search ran on every adapter, e.g.
  // after a bluetoothd restart forgot the device): the next attempt goes there.
  const d = draft.device(event.address);
  if (event.failureClass === 'notFound' && d?.status === 'connecting' && d.adapter === a.name) {
    const heardOn = Object.keys(draft.sightings.get(d.address) ?? {});
    const elsewhere = heardOn.length > 0 && !heardOn.includes(a.name);
    const to = elsewhere ? chooseAdapter(draft.view, d.address, [a.name]) : null;
    if (to !== null && d.childId !== null) {
      draft.lastChosen = to;
      draft.patch(d.address, { adapter: to });
      draft.send(d.childId, { type: 'ADAPTER_ASSIGNED', adapter: to });
      draft.emitted.push({
        type: 'device-rotated',
        address: d.address,
        from: a.name,
        to,
        failureClass: 'notFound',
      });
      // Its slot on the adapter it left is free now: a device waiting for one gets it.
      return finish(draft);
    }
  }
  return draft.result();
}

/** A child told to wait for a slot has torn its attempt down: its slot is free, it waits in the queue. */
export function childWaitingForSlot(
  context: PoolContext,
  event: Extract<ChildReport, { type: 'CHILD_WAITING_FOR_SLOT' }>,
): StepResult {
  const draft = new Draft(context);
  const d = draft.device(event.address);
  if (d === undefined || d.childId === null) return draft.result();
  draft.patch(d.address, { waiting: true });
  if (d.status === 'parked' && lentSlotIsTaken(draft.view, d)) {
    // Its slot was lent while it waited, not given away: the borrower (a device connected
    // meanwhile) keeps it, and this device takes its adapter back for its next attempt anyway,
    // one over the count. Queued behind devices that hold their links for good, a dead device
    // would otherwise never use up its attempts.
    const back = d.parkedFrom ?? '';
    draft.patch(d.address, {
      status: 'connecting',
      adapter: back,
      waiting: false,
      parkedFrom: null,
      tookLentSlot: true,
    });
    draft.send(d.childId, { type: 'ADAPTER_ASSIGNED', adapter: back });
    draft.emitted.push({ type: 'device-assigned', address: d.address, adapter: back });
    return finish(draft);
  }
  if (d.status === 'requeueing' || d.status === 'parked') draft.enqueue(d.address);
  // Its backoff ended before the pool parked it (it was rotated meanwhile): the slot it holds is its own.
  else if (d.status === 'connecting' && d.adapter !== null) {
    draft.patch(d.address, { waiting: false });
    draft.send(d.childId, { type: 'ADAPTER_ASSIGNED', adapter: d.adapter });
  }
  return finish(draft);
}

/**
 * A parked device back from its wait finds no free slot anywhere that sees it, while the adapter
 * it parked on is still usable and still sees it: its slot was taken by a device that waited.
 */
function lentSlotIsTaken(view: PoolContext, d: PoolDevice): boolean {
  const from = d.parkedFrom;
  if (from === null || !adaptersForDevice(view, d.address).includes(from)) return false;
  return chooseAdapter(view, d.address) === null;
}

/**
 * A child waits out a backoff on `event.adapter`: it needs no slot meanwhile, so the slot goes to a
 * device that waits for one; the child asks again when its wait ends (CHILD_WAITING_FOR_SLOT). A
 * report from an adapter the pool has moved it away from since (a rotation) changes nothing.
 */
export function childParked(
  context: PoolContext,
  event: Extract<ChildReport, { type: 'CHILD_PARKED' }>,
): StepResult {
  const draft = new Draft(context);
  const d = draft.device(event.address);
  if (d === undefined || d.childId === null) return draft.result();
  if (d.status !== 'connecting' || d.adapter !== event.adapter || isRecovering(d)) return draft.result();
  draft.patch(d.address, { status: 'parked', adapter: null, parkedFrom: event.adapter, waiting: false });
  draft.emitted.push({ type: 'device-parked', address: d.address, adapter: event.adapter });
  return finish(draft);
}

/**
 * A child started or ended the recovery ladder (its adapter may be powered off, gone, or bluetoothd
 * restarting meanwhile). At the end the pool does what it left undone while the ladder ran: a child
 * whose adapter is still not usable (not recovered, unplugged, bluetoothd not back) goes to another
 * adapter that sees the device, or waits for a slot.
 */
export function childResetting(
  context: PoolContext,
  event: Extract<ChildReport, { type: 'CHILD_RESETTING' }>,
): StepResult {
  const draft = new Draft(context);
  const d = draft.device(event.address);
  if (d === undefined || d.childId === null) return draft.result();
  draft.patch(d.address, { recoveringOn: event.running ? event.adapter : null });
  const adapter = d.adapter;
  if (!event.running && d.status === 'connecting' && adapter !== null) {
    if (!usableAdapters(draft.view).includes(adapter)) {
      const why = draft.bluezUp
        ? `${adapter} is not usable after its recovery ladder`
        : 'bluetoothd went away';
      moveAway(draft, { ...d, recoveringOn: null }, adapter, why);
    }
  }
  return finish(draft);
}

/** A child's escalation asked for another adapter (rotation, docs/architecture.md). */
export function rotationRequested(context: PoolContext, event: RotationRequest): StepResult {
  const draft = new Draft(context);
  const d = draft.device(event.address);
  if (d === undefined || d.status !== 'connecting' || d.childId === null) return draft.result();
  const from = event.fromAdapter;
  const to = chooseAdapter(draft.view, d.address, [from]);
  if (to !== null) {
    draft.lastChosen = to;
    draft.patch(d.address, { adapter: to });
    draft.send(d.childId, { type: 'ADAPTER_ASSIGNED', adapter: to });
    draft.emitted.push({
      type: 'device-rotated',
      address: d.address,
      from,
      to,
      failureClass: event.failureClass,
    });
  } else if (event.failureClass === 'outOfSlots') {
    // No other adapter sees it with a free slot and the controller refused the link: wait in the
    // queue for a slot instead of burning attempts on a saturated controller. Any other failure
    // keeps its run (and its attempt budget) on this adapter: a requeue starts a fresh run, and
    // a dead device whose adapter filled up while it was parked would never use up its attempts.
    // Its backoff parks it anyway, so it holds no slot while it waits.
    draft.requeue(d.address, `${from} has no free slot and no other adapter can take it`);
  }
  return finish(draft);
}

/** A child ended (reached `failed`, or crashed); `cause` is its final error. */
export function childEnded(
  context: PoolContext,
  childId: string,
  error: string,
  cause: unknown = undefined,
): StepResult {
  const draft = new Draft(context);
  const address = addressOfChild(childId);
  const d = address === null ? undefined : draft.device(address);
  if (d === undefined || d.childId !== childId) return draft.result();
  switch (d.status) {
    case 'disconnecting':
      draft.remove(d.address);
      break;
    default:
      draft.commands.push({ kind: 'stop', childId });
      draft.patch(d.address, {
        status: 'failed',
        adapter: null,
        childId: null,
        error,
        waiting: false,
        recoveringOn: null,
        parkedFrom: null,
      });
      draft.emitted.push({ type: 'device-failed', address: d.address, error, cause });
  }
  return finish(draft);
}

/** Devices holding a slot per adapter, and queued devices (for snapshots). */
export function slotReport(context: PoolView): {
  inUse: Record<string, string[]>;
  queued: string[];
} {
  const inUse: Record<string, string[]> = {};
  for (const name of Object.keys(context.adapters)) inUse[name] = [];
  for (const d of context.devices.values()) {
    if (holdsSlot(d) && d.adapter !== null) (inUse[d.adapter] ??= []).push(d.address);
  }
  return { inUse, queued: [...context.index.queue] };
}
