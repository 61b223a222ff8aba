/**
 * Default latencies of the simulated bluetoothd and the clock helpers that
 * apply them. Sources for the numbers:
 * - connectMs 500: LE connection setup (connection request, first connection
 *   events, ATT channel) takes 100 ms–1 s on real controllers.
 * - resolveServicesMs 300: uncached primary/characteristic/descriptor discovery
 *   of a small GATT database at a 30–50 ms connection interval.
 * - disconnectMs 2000: bluetoothd delays the actual link teardown by
 *   DISCONNECT_TIMER = 2 s (src/device.c) after Device1.Disconnect.
 * - advertisingIntervalMs 1000: a typical sensor advertising interval.
 * - temporaryTimeoutMs 30 000: main.conf TemporaryTimeout default.
 * - gattMs 30: one ATT request/response at a 30 ms connection interval.
 * - connectTimeoutMs 20 000: the kernel's LE create-connection timeout.
 * - serviceChangedRemovalMs 80, serviceChangedExportMs 130: bluetoothd 5.66 on a Service Changed,
 *   as the real-BlueZ tier measured it (objects removed one by one over ≈80 ms, the new tree
 *   exported 121–148 ms after the last removal).
 */
import type { SimTiming } from './types.js';

export type FullTiming = Required<SimTiming>;

export const DEFAULT_TIMING: FullTiming = {
  connectMs: 500,
  resolveServicesMs: 300,
  disconnectMs: 2000,
  advertisingIntervalMs: 1000,
  temporaryTimeoutMs: 30_000,
  gattMs: 30,
  connectTimeoutMs: 20_000,
  serviceChangedRemovalMs: 80,
  serviceChangedExportMs: 130,
};

/**
 * Defaults are multiplied by `latencyScale`; explicit `timing` values are taken
 * as given (a test that says 50 ms means 50 ms).
 */
export function resolveTiming(latencyScale = 1, timing: Partial<SimTiming> = {}): FullTiming {
  if (!Number.isFinite(latencyScale) || latencyScale < 0) {
    throw new RangeError(`latencyScale must be a finite number >= 0 (got ${latencyScale})`);
  }
  const out = { ...DEFAULT_TIMING };
  for (const key of Object.keys(out) as (keyof FullTiming)[]) {
    const explicit = timing[key];
    if (explicit !== undefined) {
      if (typeof explicit !== 'number' || !Number.isFinite(explicit) || explicit < 0) {
        throw new RangeError(
          `timing.${key} must be a finite number of milliseconds >= 0 (got ${String(explicit)})`,
        );
      }
      out[key] = explicit;
    } else {
      out[key] = DEFAULT_TIMING[key] * latencyScale;
    }
  }
  // Intervals of 0 would spin; keep periodic work at >= 1 ms.
  out.advertisingIntervalMs = Math.max(1, out.advertisingIntervalMs);
  return out;
}

/** Timers that can all be cancelled at once when the simulator stops or bluetoothd "restarts". */
export class Timers {
  private readonly active = new Set<ReturnType<typeof setTimeout>>();
  private readonly sleepers = new Set<(stopped: boolean) => void>();

  after(ms: number, fn: () => void): () => void {
    const t = setTimeout(() => {
      this.active.delete(t);
      fn();
    }, ms);
    this.active.add(t);
    return () => {
      clearTimeout(t);
      this.active.delete(t);
    };
  }

  every(ms: number, fn: () => void): () => void {
    const t = setInterval(fn, ms);
    this.active.add(t);
    return () => {
      clearInterval(t);
      this.active.delete(t);
    };
  }

  /**
   * Resolves true after `ms`, or false at once when the timers are cleared or `signal` aborts; the
   * timer is cleared either way, so an abandoned sleep leaves nothing behind.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      if (signal?.aborted) {
        resolve(false);
        return;
      }
      let cancel: () => void = () => undefined;
      const onAbort = () => wake(true);
      const wake = (stopped: boolean) => {
        this.sleepers.delete(wake);
        signal?.removeEventListener('abort', onAbort);
        cancel();
        resolve(!stopped);
      };
      this.sleepers.add(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
      cancel = this.after(ms, () => wake(false));
    });
  }

  clearAll(): void {
    for (const t of this.active) clearTimeout(t);
    this.active.clear();
    for (const wake of [...this.sleepers]) wake(true);
  }
}
