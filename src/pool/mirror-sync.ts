/**
 * Mirror → adapter pool: turns what BlueZ shows into the pool machine's events (BLUEZ_UP,
 * BLUEZ_DOWN, ADAPTER_PRESENT, ADAPTER_GONE, ADAPTER_LINKS, LINKS_CHANGED, SIGHTINGS), with work
 * proportional to what changed. An adapter's links go as a whole list (ADAPTER_LINKS) when the
 * adapter is new or on a full re-derive, and otherwise as the links that came up or went down
 * among the devices named in the batch (LINKS_CHANGED), not as the adapter's whole list again. It listens to the mirror's per-tick {@link MirrorChangeBatch} and re-derives only
 * the adapters and devices named there (the mirror's indexes answer "which adapters hear this
 * address" and "which devices are connected on this adapter" without scanning the tree). A rebuild
 * or owner change re-derives everything once. Each event is sent only when its payload differs
 * from the last one sent.
 */
import type { BluezMirror, MirrorChangeBatch } from '../bluez/mirror.js';
import type { Sightings } from '../machines/adapter-pool-logic.js';

/** The pool events this module sends (the pool machine's own event types, by shape). */
export type MirrorSyncEvent =
  | { type: 'BLUEZ_UP' }
  | { type: 'BLUEZ_DOWN' }
  | { type: 'ADAPTER_PRESENT'; name: string; powered: boolean }
  | { type: 'ADAPTER_GONE'; name: string }
  | { type: 'ADAPTER_LINKS'; name: string; connected: string[] }
  | { type: 'LINKS_CHANGED'; name: string; up: string[]; down: string[] }
  | { type: 'SIGHTINGS'; address: string; sightings: Sightings };

/** What {@link startMirrorSync} needs. */
export interface MirrorSyncOptions {
  readonly mirror: BluezMirror;
  /** Adapters the pool may use. */
  readonly allowed: (adapter: string) => boolean;
  /** Whether the pool manages `address` (only those get SIGHTINGS). */
  readonly inPool: (address: string) => boolean;
  /** Every address the pool manages (read on a full re-derive only). */
  readonly poolDevices: () => Iterable<string>;
  /** Delivers one event to the pool. */
  readonly send: (event: MirrorSyncEvent) => void;
}

/** Work counters (tests check that one device's change touches that device only). */
export interface MirrorSyncStats {
  /** Batches handled. */
  batches: number;
  /** Full re-derives (rebuild, owner change, start). */
  full: number;
  /** Sightings computed, one per device looked at. */
  sightingsComputed: number;
  /** Link lists computed, one per adapter looked at. */
  linksComputed: number;
}

/** A running sync. */
export interface MirrorSync {
  /** The adapters known to be present, with their power (what the pool was last told). */
  readonly adapters: ReadonlyMap<string, boolean>;
  /** Sends the device's current sightings now (a device that just joined the pool). */
  announce(address: string): void;
  /** Re-derives everything now (first sync at start). */
  syncAll(): void;
  readonly stats: Readonly<MirrorSyncStats>;
  /** Stops listening. Idempotent. */
  stop(): void;
}

/**
 * Where the mirror shows `address` on an allowed adapter, with its RSSI (null when unknown).
 * Uses the mirror's address index: O(adapters hearing it).
 */
export function sightingsOf(
  mirror: BluezMirror,
  address: string,
  allowed: (adapter: string) => boolean,
): Sightings {
  const out: Record<string, number | null> = {};
  for (const [adapter, rssi] of mirror.rssiByAdapter(address)) {
    if (allowed(adapter)) out[adapter] = rssi ?? null;
  }
  return out;
}

function sightingsKey(s: Sightings): string {
  let key = '';
  for (const [adapter, rssi] of Object.entries(s)) key += `${adapter}=${String(rssi)};`;
  return key;
}

/** Starts feeding the pool from the mirror; call {@link MirrorSync.syncAll} once the pool runs. */
export function startMirrorSync(options: MirrorSyncOptions): MirrorSync {
  const { mirror, allowed, inPool, send } = options;
  let stopped = false;
  let up = mirror.bluezReady;
  let known = new Map<string, boolean>(
    up ? mirror.adapters().flatMap((a) => (allowed(a.name) ? [[a.name, a.powered] as const] : [])) : [],
  );
  const lastSightings = new Map<string, string>();
  // The links the pool was last told of, per adapter.
  const lastLinks = new Map<string, Set<string>>();
  const stats: MirrorSyncStats = { batches: 0, full: 0, sightingsComputed: 0, linksComputed: 0 };

  const sendSightings = (address: string): void => {
    stats.sightingsComputed += 1;
    const sightings = sightingsOf(mirror, address, allowed);
    const key = sightingsKey(sightings);
    if (lastSightings.get(address) === key) return;
    lastSightings.set(address, key);
    send({ type: 'SIGHTINGS', address, sightings });
  };

  const sendLinks = (name: string): void => {
    stats.linksComputed += 1;
    // Every link BlueZ shows takes a controller slot, another service's too (docs/architecture.md).
    const connected = mirror.connectedAddresses(name);
    const last = lastLinks.get(name);
    if (last !== undefined && last.size === connected.length && connected.every((a) => last.has(a))) return;
    lastLinks.set(name, new Set(connected));
    send({ type: 'ADAPTER_LINKS', name, connected });
  };

  /** The links of `name` that came up or went down among `devices` (what a batch names). */
  const sendLinkChanges = (name: string, devices: ReadonlySet<string>): void => {
    const last = lastLinks.get(name);
    if (last === undefined) {
      sendLinks(name);
      return;
    }
    stats.linksComputed += 1;
    const up: string[] = [];
    const down: string[] = [];
    for (const address of devices) {
      const connected = mirror.device(name, address)?.connected === true;
      if (connected && !last.has(address)) up.push(address);
      else if (!connected && last.has(address)) down.push(address);
    }
    if (up.length === 0 && down.length === 0) return;
    for (const address of up) last.add(address);
    for (const address of down) last.delete(address);
    send({ type: 'LINKS_CHANGED', name, up, down });
  };

  /**
   * Adapters: presence and power, O(adapters). Returns the names that appeared, and whether any
   * appeared or went (then every pool device's sightings may differ).
   */
  const syncAdapters = (ready: boolean): { appeared: string[]; changed: boolean } => {
    const now = new Map<string, boolean>();
    if (ready) for (const a of mirror.adapters()) if (allowed(a.name)) now.set(a.name, a.powered);
    const appeared: string[] = [];
    let changed = false;
    for (const name of known.keys()) {
      if (now.has(name)) continue;
      changed = true;
      send({ type: 'ADAPTER_GONE', name });
    }
    for (const [name, powered] of now) {
      if (!known.has(name)) appeared.push(name);
      if (known.get(name) !== powered) send({ type: 'ADAPTER_PRESENT', name, powered });
    }
    known = now;
    for (const name of lastLinks.keys()) if (!now.has(name)) lastLinks.delete(name);
    return { appeared, changed: changed || appeared.length > 0 };
  };

  const sync = (batch: MirrorChangeBatch | undefined): void => {
    if (stopped) return;
    const full = batch === undefined || batch.full;
    stats.batches += 1;
    if (full) stats.full += 1;
    const ready = mirror.bluezReady;
    if (!ready && up) {
      up = false;
      send({ type: 'BLUEZ_DOWN' });
      known = new Map();
    }
    const adapters = full || batch.adapters.size > 0 ? syncAdapters(ready) : { appeared: [], changed: false };
    if (full) {
      for (const name of known.keys()) sendLinks(name);
      for (const address of options.poolDevices()) sendSightings(address);
    } else {
      for (const name of adapters.appeared) if (known.has(name)) sendLinks(name);
      for (const name of batch.links)
        if (known.has(name) && !adapters.appeared.includes(name)) sendLinkChanges(name, batch.devices);
      if (adapters.changed) {
        // An adapter that comes or goes changes where every device is heard (rare: O(N) once).
        for (const address of options.poolDevices()) sendSightings(address);
      } else {
        for (const address of batch.devices) if (inPool(address)) sendSightings(address);
      }
    }
    if (ready && !up) {
      up = true;
      send({ type: 'BLUEZ_UP' });
    }
  };

  const off = mirror.on('changes', sync);
  return {
    get adapters() {
      return known;
    },
    announce(address) {
      if (stopped) return;
      lastSightings.delete(address);
      sendSightings(address);
    },
    syncAll: () => sync(undefined),
    stats,
    stop() {
      if (stopped) return;
      stopped = true;
      off();
    },
  };
}
