/**
 * Options of managed discovery and their validation (no I/O).
 */
import { resolveScanLockOptions, type ResolvedScanLock, type ScanLockOptions } from '../lock/config.js';

/** What managed discovery tells its observer. */
export type DiscoveryEvent =
  | { type: 'scan-lock-degraded'; adapter: string; waitedMs: number }
  | { type: 'discovery-shared'; adapter: string }
  | { type: 'discovery-started'; adapter: string }
  | { type: 'discovery-stopped'; adapter: string };

/** How this process takes part in discovery. */
export interface DiscoveryOptions {
  /**
   * The per-adapter scan lock around our StartDiscovery…StopDiscovery (off by default): `true` or
   * options. Uses `/run/bleak-cm-{adapter}-scan.lock`, the Python library's file.
   */
  scanLock?: boolean | ScanLockOptions;
  /**
   * `scan` (default): start a discovery session of our own when a device must be found.
   * `listen`: never call StartDiscovery; wait for the device to show up from another process's
   * discovery (a discovery owner, see `startDiscoveryOwner`), through InterfacesAdded and
   * PropertiesChanged.
   */
  mode?: 'scan' | 'listen';
  /** Service UUIDs for SetDiscoveryFilter (with Transport `le`); default none. */
  uuids?: readonly string[];
  /** Observer of scan-lock timeouts and of sessions (the connection actor logs them). */
  onEvent?: (event: DiscoveryEvent) => void;
}

/** Options after validation. */
export interface ResolvedDiscovery {
  readonly scanLock: ResolvedScanLock | undefined;
  readonly mode: 'scan' | 'listen';
  readonly uuids: readonly string[];
  readonly onEvent: ((event: DiscoveryEvent) => void) | undefined;
}

/** Plain on-demand discovery, no lock: what the library did before managed discovery. */
export const DEFAULT_DISCOVERY: ResolvedDiscovery = Object.freeze({
  scanLock: undefined,
  mode: 'scan',
  uuids: [],
  onEvent: undefined,
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Validates `discovery` (TypeError/RangeError naming the field). */
export function resolveDiscoveryOptions(value: unknown, field = 'discovery'): ResolvedDiscovery {
  if (value === undefined) return DEFAULT_DISCOVERY;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new TypeError(`${field} must be an object`);
  const o = value as DiscoveryOptions;
  const mode = o.mode ?? 'scan';
  if (mode !== 'scan' && mode !== 'listen')
    throw new RangeError(`${field}.mode must be "scan" or "listen", got ${JSON.stringify(mode)}`);
  const uuids = o.uuids ?? [];
  if (!Array.isArray(uuids)) throw new TypeError(`${field}.uuids must be an array of UUID strings`);
  const wanted = (uuids as readonly unknown[]).map((u, i) => {
    if (typeof u !== 'string' || !UUID.test(u))
      throw new RangeError(`${field}.uuids[${i}] must be a 128-bit UUID string, got ${JSON.stringify(u)}`);
    return u.toLowerCase();
  });
  if (o.onEvent !== undefined && typeof o.onEvent !== 'function')
    throw new TypeError(`${field}.onEvent must be a function`);
  return {
    scanLock: resolveScanLockOptions(o.scanLock, `${field}.scanLock`),
    mode,
    uuids: wanted,
    onEvent: o.onEvent,
  };
}
