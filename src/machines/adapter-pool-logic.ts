/**
 * The adapter pool's bookkeeping as pure functions over plain data: slot accounting, the learned
 * slot limit, and adapter choice. BlueZ does not expose a controller's link limit (docs/bluez-facts.md),
 * so the pool counts the links on each adapter (the ones BlueZ shows connected, another service's
 * included, plus its own devices still connecting) and learns a lower limit when a controller
 * refuses links while it really holds fewer than configured.
 */
import type { FailureClass, WatchdogConfig } from './connection-contracts.js';
import type { EscalationConfig } from './escalation.js';
import { PersistentTable } from './persistent-table.js';

/** How the pool picks an adapter for a device. */
export type AdapterStrategy = 'round-robin' | 'score';

/** One adapter as the pool sees it. */
export interface PoolAdapter {
  readonly name: string;
  /** Adapter1 object present in BlueZ. */
  readonly present: boolean;
  readonly powered: boolean;
  /**
   * A limit learned from a refused link (the controller holds fewer links than configured), or null.
   * Cleared when the adapter or bluetoothd comes back fresh.
   */
  readonly learnedLimit: number | null;
  /**
   * The real link count of one RF-abort-class refusal not yet confirmed by a second one at the same
   * count (see {@link lessonFromRefusal}), or null.
   */
  readonly suspectedLimit: number | null;
  /** Failed attempts on this adapter (any device) since its last success. */
  readonly recentFailures: number;
}

/** Lifecycle of a device in the pool. */
export type PoolDeviceStatus =
  /** Waiting for a free slot on an adapter that sees it. */
  | 'queued'
  /** Its child is establishing the connection on `adapter`. */
  | 'connecting'
  | 'connected'
  /** A caller asked to disconnect; the child tears down. */
  | 'disconnecting'
  /**
   * No adapter could take it: its child was told to wait for a slot (QUEUED_FOR_SLOT) and tears its
   * attempt down; the slot stays counted until the child reports that it is waiting.
   */
  | 'requeueing'
  /**
   * Its child waits out a backoff (CHILD_PARKED): it holds no slot, keeps its attempt budget, and
   * asks for a slot again when the wait ends (it is queued then, its last adapter preferred).
   */
  | 'parked'
  /** Gave up (attempts exhausted or cancelled): the error is in `error`. */
  | 'failed';

/** Per-device connection settings the pool passes to the child (plain data). */
export interface PoolDeviceSettings {
  readonly maxAttempts: number;
  readonly attemptTimeoutMs: number;
  readonly closeInactiveConnections: boolean;
  readonly escalation: EscalationConfig;
  readonly backoffMs: Partial<Record<FailureClass, number>>;
  /** Deadline of the wait for a link to drop (the child's `disconnectTimeoutMs`); default 5 000. */
  readonly disconnectTimeoutMs?: number;
  /** How long the child may look for a device BlueZ no longer knows; default 10 000. */
  readonly rediscoveryTimeoutMs?: number;
  /** The notification watchdog of the child (a zombie ends in idle; the pool's keep-alive reconnects). */
  readonly watchdog?: WatchdogConfig | null;
}

/** One device of the pool. */
export interface PoolDevice {
  readonly address: string;
  readonly status: PoolDeviceStatus;
  /** The adapter whose slot this device holds (connecting/connected/disconnecting/requeueing), or null. */
  readonly adapter: string | null;
  /**
   * Id of its connection actor: one for as long as the device is in the pool (it waits for a slot
   * in `waiting-for-slot`); a device connected again after it failed gets a new one.
   */
  readonly childId: string | null;
  /**
   * Its child reported that it waits in `waiting-for-slot` (CHILD_WAITING_FOR_SLOT) and has not been
   * assigned an adapter since: it starts on ADAPTER_ASSIGNED alone (an idle child needs CONNECT).
   */
  readonly waiting: boolean;
  /**
   * The adapter on which its child runs the recovery ladder (CHILD_RESETTING), or null: the pool
   * leaves it alone until it ends (the ladder itself powers the adapter off, re-plugs it or
   * restarts bluetoothd).
   */
  readonly recoveringOn: string | null;
  /** The adapter a parked device waited on: preferred when it asks for a slot again. */
  readonly parkedFrom: string | null;
  /**
   * It came back from a parked backoff to the adapter it had lent its slot on, although the
   * borrower still holds it (one over the count for its next attempts).
   */
  readonly tookLentSlot: boolean;
  /** How many children were spawned for it (ids are unique per spawn; a new one only after `failed`). */
  readonly spawns: number;
  /** Reconnect after a link loss (keep-alive); false after a requested disconnect. */
  readonly keepAlive: boolean;
  readonly settings: PoolDeviceSettings;
  /** Why it failed (status `failed`). */
  readonly error: string | null;
  /** Queue ticket: the queue is served in ticket order (FIFO). */
  readonly ticket: number;
}

/** Where BlueZ sees a device: adapter → RSSI (null when BlueZ has none). */
export type Sightings = Readonly<Record<string, number | null>>;

/** The pool's use of one adapter, kept up to date by the steps (see {@link PoolIndex}). */
export interface AdapterUse {
  /** Our devices holding a slot on it ({@link holdsSlot}). */
  readonly held: number;
  /** Of those, the ones BlueZ also shows connected on it (one slot each, not two). */
  readonly heldLinked: number;
  /** Devices whose child runs the recovery ladder on it. */
  readonly recovering: number;
}

/**
 * What the pool would otherwise find by scanning every device on every event, kept up to date by
 * each step for the devices that step changes: slot use per adapter and the queue in ticket order.
 * {@link buildPoolIndex} derives it from scratch (a test checks that both agree after every step).
 */
export interface PoolIndex {
  readonly use: Readonly<Record<string, AdapterUse>>;
  /** Addresses of the queued devices, oldest ticket first. */
  readonly queue: readonly string[];
}

/** The part of the pool context the logic needs. */
export interface PoolView {
  readonly adapters: Readonly<Record<string, PoolAdapter>>;
  /** By address (an immutable table: a step copies only what it changes). */
  readonly devices: PersistentTable<PoolDevice>;
  /** Where BlueZ sees each device, by address. */
  readonly sightings: PersistentTable<Sightings>;
  /**
   * Devices BlueZ shows connected per adapter (Device1.Connected), whoever made the link: another
   * service on the host, a phantom, or one of ours. A controller's slots are shared by all of them.
   */
  readonly links: Readonly<Record<string, PersistentTable<true>>>;
  /**
   * Connect attempts other processes have under way per adapter: slot lock files held by another
   * pid (cross-process locks on). Each will be a link on the controller in a moment.
   */
  readonly foreignAttempts?: Readonly<Record<string, number>>;
  readonly slotsPerAdapter: number;
  readonly strategy: AdapterStrategy;
  /** Round-robin position: the adapter name chosen last (the next choice starts after it). */
  readonly lastChosen: string | null;
  readonly bluezUp: boolean;
  readonly index: PoolIndex;
}

/** The use of an adapter nothing holds. */
export const NO_USE: AdapterUse = { held: 0, heldLinked: 0, recovering: 0 };

/** {@link PoolIndex} derived from scratch by scanning every device (start, tests). */
export function buildPoolIndex(devices: PersistentTable<PoolDevice>, links: PoolView['links']): PoolIndex {
  const use: Record<string, { held: number; heldLinked: number; recovering: number }> = {};
  const of = (adapter: string) => (use[adapter] ??= { ...NO_USE });
  const all = devices.values();
  for (const d of all) {
    if (holdsSlot(d) && d.adapter !== null) {
      of(d.adapter).held += 1;
      if (links[d.adapter]?.has(d.address) === true) of(d.adapter).heldLinked += 1;
    }
    if (d.recoveringOn !== null) of(d.recoveringOn).recovering += 1;
  }
  const queue = all
    .filter((d) => d.status === 'queued')
    .sort((a, b) => a.ticket - b.ticket)
    .map((d) => d.address);
  return { use, queue };
}

/** An empty pool's tables and index (machine start, tests building a view by hand). */
export function emptyPoolTables(): Pick<PoolView, 'devices' | 'sightings' | 'index'> {
  return {
    devices: PersistentTable.empty(),
    sightings: PersistentTable.empty(),
    index: { use: {}, queue: [] },
  };
}

/** Statuses in which a device holds a slot on its adapter. */
export function holdsSlot(device: PoolDevice): boolean {
  return (
    device.adapter !== null &&
    (device.status === 'connecting' ||
      device.status === 'connected' ||
      device.status === 'disconnecting' ||
      device.status === 'requeueing')
  );
}

/**
 * Slots in use on `adapter`: the devices holding one of ours there (connecting ones included: their
 * link is not up yet) together with every link BlueZ shows on it. Counting only our own devices let
 * the pool hand out slots that another service's links occupied: the controller refused the device,
 * the pool could not explain the refusal, and re-queued it onto the same adapter at once, a refusal
 * loop (about 100 Connect calls a second against the simulator) instead of the ~4 s out-of-slots
 * back-off that lets links drain (docs/defaults.md).
 */
export function slotsInUse(view: PoolView, adapter: string, except?: string): number {
  // From the index ({@link PoolIndex}): O(1), not a scan of every device.
  const use = view.index.use[adapter] ?? NO_USE;
  let occupied = (view.links[adapter]?.size ?? 0) + use.held - use.heldLinked;
  if (except !== undefined) {
    const d = view.devices.get(except);
    const holdsHere = d !== undefined && d.adapter === adapter && holdsSlot(d);
    if (holdsHere || view.links[adapter]?.has(except) === true) occupied -= 1;
  }
  return occupied + (view.foreignAttempts?.[adapter] ?? 0);
}

/** The limit the pool uses for `adapter`: the configured one, lowered by a learned one. */
export function effectiveLimit(view: PoolView, adapter: string): number {
  const learned = view.adapters[adapter]?.learnedLimit ?? null;
  return learned === null ? view.slotsPerAdapter : Math.min(learned, view.slotsPerAdapter);
}

/** Free slots on `adapter` (never negative). */
export function freeSlots(view: PoolView, adapter: string, except?: string): number {
  return Math.max(0, effectiveLimit(view, adapter) - slotsInUse(view, adapter, except));
}

/** Adapters that can be used at all: present, powered, bluetoothd up. Sorted by name (hci2 < hci10). */
export function usableAdapters(view: PoolView): string[] {
  if (!view.bluezUp) return [];
  return Object.values(view.adapters)
    .filter((a) => a.present && a.powered)
    .map((a) => a.name)
    .sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
}

/**
 * Adapters that may carry `address`: those on which BlueZ sees it; when no adapter sees it at all,
 * every usable adapter (the connection actor runs discovery there). Rotating to an adapter that
 * never saw the device would burn a whole attempt.
 */
export function adaptersForDevice(view: PoolView, address: string): string[] {
  const usable = usableAdapters(view);
  const seen = view.sightings.get(address) ?? {};
  const seeing = usable.filter((a) => a in seen);
  const anySeen = Object.keys(seen).length > 0;
  return anySeen ? seeing : usable;
}

/** Score of an adapter for a device (higher is better). */
export function adapterScore(view: PoolView, adapter: string, address: string): number {
  const rssi = view.sightings.get(address)?.[adapter] ?? null;
  const failures = view.adapters[adapter]?.recentFailures ?? 0;
  // Free slots dominate (a full adapter would refuse the link), then recent failures, then RSSI.
  return freeSlots(view, adapter, address) * 20 - failures * 15 + (rssi ?? -100);
}

/**
 * The adapter for `address`, or null when none can take it now (the device waits in the queue).
 * `exclude` removes adapters (the one that just refused it).
 */
export function chooseAdapter(
  view: PoolView,
  address: string,
  exclude: readonly string[] = [],
): string | null {
  const candidates = adaptersForDevice(view, address).filter(
    (a) => !exclude.includes(a) && freeSlots(view, a, address) > 0,
  );
  if (candidates.length === 0) return null;
  if (view.strategy === 'score') {
    let best = candidates[0] ?? null;
    for (const a of candidates) {
      if (best === null || adapterScore(view, a, address) > adapterScore(view, best, address)) best = a;
    }
    return best;
  }
  // Round-robin over all usable adapters, so that the rotation is fair across devices.
  const ring = usableAdapters(view);
  const start = view.lastChosen === null ? 0 : ring.indexOf(view.lastChosen) + 1;
  for (let i = 0; i < ring.length; i += 1) {
    const a = ring[(start + i) % ring.length];
    if (a !== undefined && candidates.includes(a)) return a;
  }
  return candidates[0] ?? null;
}

/**
 * Links the controller of `adapter` really held besides `address`: the count the failed Connect
 * carried (read from BlueZ when it failed), else the devices BlueZ shows connected there now. Never
 * the pool's reservations: a device still connecting, or one that never links, holds no controller
 * link, and counting it made the pool learn 5 on a controller that takes 4.
 */
export function realLinksBesides(
  view: PoolView,
  adapter: string,
  address: string,
  linksOnAdapter?: number,
): number {
  if (linksOnAdapter !== undefined) return linksOnAdapter;
  const links = view.links[adapter];
  if (links === undefined) return 0;
  return links.size - (links.has(address) ? 1 : 0);
}

/** What a failed attempt teaches about an adapter's limit (only the fields that change). */
export type RefusalLesson = Partial<Pick<PoolAdapter, 'learnedLimit' | 'suspectedLimit'>>;

/**
 * What a failed connect on `adapter` at `links` real links (besides the device) says about the
 * controller's limit. bluetoothd reports a controller refusing for lack of resources (HCI 0x0d) as
 * le-connection-abort-by-local, the very text of an ordinary RF abort, and RF aborts are common and
 * usually gone on the next attempt; a limit learned from one of them would hold
 * good slots back until re-probed (the limit is hard and undocumented, so a wrong
 * one is only found by trying). So an abort is a suspicion, and the limit is learned only when a
 * second abort on that adapter comes at the same real link count (a saturated controller refuses
 * every try at that count; radio trouble does not line up with it), unless a connect succeeded at
 * that count in between ({@link lessonFromSuccess}). An out-of-slots error (the text says so, or
 * the links were already at the limit in force) is a refusal by itself. With no link on the
 * controller a refusal says nothing about its limit.
 */
export function lessonFromRefusal(
  view: PoolView,
  adapter: string,
  address: string,
  failureClass: FailureClass,
  linksOnAdapter?: number,
): RefusalLesson {
  const a = view.adapters[adapter];
  if (a === undefined || (failureClass !== 'outOfSlots' && failureClass !== 'aborted')) return {};
  const links = realLinksBesides(view, adapter, address, linksOnAdapter);
  if (links < 1) return {};
  const lower = (limit: number): RefusalLesson =>
    a.learnedLimit === null || limit < a.learnedLimit
      ? { learnedLimit: limit, suspectedLimit: null }
      : { suspectedLimit: null };
  if (failureClass === 'outOfSlots' || a.suspectedLimit === links) return lower(links);
  return { suspectedLimit: links };
}

/**
 * A link came up on `adapter` while `links` other links were there: a suspicion at that count or
 * lower is disproven, and a learned limit at or below it was wrong (the controller took more).
 */
export function lessonFromSuccess(a: PoolAdapter, links: number): RefusalLesson {
  const lesson: { learnedLimit?: number | null; suspectedLimit?: number | null } = {};
  if (a.suspectedLimit !== null && links >= a.suspectedLimit) lesson.suspectedLimit = null;
  if (a.learnedLimit !== null && links + 1 > a.learnedLimit) lesson.learnedLimit = null;
  return lesson;
}
