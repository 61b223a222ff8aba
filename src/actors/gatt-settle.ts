/**
 * Waiting for a connected device's GATT tree to settle, for the late-GATT re-validation of the
 * connection machine (`validating.waiting-for-late-gatt`, awaitGattSettled in connection-actors.ts).
 *
 * Why settle and not "the next change": when a peripheral changes its database on a live link
 * (Service Changed), bluetoothd 5.66 removes the affected service objects one InterfacesRemoved at
 * a time and exports the re-discovered ones some 120–150 ms later (measured in the real-BlueZ tier;
 * src/gatt-client.c unregisters each service, then exports after discovery completes). Each of
 * those signals is a change; re-validating at each one sees a tree half gone. The tree counts as
 * settled once no GATT object of the device was added or removed for {@link GATT_QUIET_MS} after a
 * removal, or for {@link GATT_ADDED_QUIET_MS} when objects were only added.
 */
import type { BluezClient } from '../bluez/client-types.js';
import type { MirrorChange } from '../bluez/mirror.js';
import { devicePath } from '../bluez/validate.js';

/**
 * After a removal (a Service Changed under way): no GATT object added or removed for this long =
 * settled. Longer than the gaps inside one burst (bluetoothd 5.66: removals over ≈80 ms, the new
 * tree exported ≈130 ms after the last one).
 */
export const GATT_QUIET_MS = 100;

/**
 * When objects were only added (a late-GATT peripheral whose services bluetoothd exports after
 * ServicesResolved): settled after this much quiet. bluetoothd exports a discovered database in
 * one pass (src/gatt-client.c, btd_gatt_client_ready → create_services), so the burst arrives together;
 * nothing can vanish under the validator, and a tree still incomplete only means another wait.
 */
export const GATT_ADDED_QUIET_MS = 15;

/** How a {@link waitGattSettled} ended. */
export type GattSettleOutcome =
  /** The tree changed and then stayed unchanged for `quietMs`. */
  | 'settled'
  /** `untilMs` passed (with or without changes still under way). */
  | 'deadline'
  /** Connected=false, or the device object went away. */
  | 'disconnected';

/**
 * Resolves when the device's GATT tree changed and then settled, when the link drops, or at
 * `untilMs` (a `performance.now()` time), whichever comes first. Rejects with `signal.reason` on
 * abort. Its listener and timers are released on every path.
 */
export function waitGattSettled(
  bluez: BluezClient,
  adapter: string,
  address: string,
  options: { untilMs: number; quietMs?: number; addedQuietMs?: number; signal: AbortSignal },
): Promise<GattSettleOutcome> {
  const { signal } = options;
  const quietMs = options.quietMs ?? GATT_QUIET_MS;
  const addedQuietMs = options.addedQuietMs ?? GATT_ADDED_QUIET_MS;
  // Once anything was removed, the long quiet applies until the wait ends: the new objects of a
  // Service Changed follow its removals with a gap.
  let removalSeen = false;
  const path = devicePath(adapter, address);
  const prefix = `${path}/`;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<GattSettleOutcome>((resolve, reject) => {
    let quietTimer: NodeJS.Timeout | undefined;
    const finish = (outcome: GattSettleOutcome | { error: unknown }): void => {
      clearTimeout(quietTimer);
      clearTimeout(deadlineTimer);
      off();
      signal.removeEventListener('abort', onAbort);
      if (typeof outcome === 'object') reject(outcome.error);
      else resolve(outcome);
    };
    const onAbort = (): void => finish({ error: signal.reason });
    const linkDown = (): boolean => bluez.device(adapter, address)?.connected !== true;
    const onChange = (change: MirrorChange): void => {
      if (change.path === path) {
        if (linkDown()) finish('disconnected');
        return;
      }
      if (!change.path.startsWith(prefix) || change.type === 'propertiesChanged') return;
      if (change.type === 'interfacesRemoved') removalSeen = true;
      clearTimeout(quietTimer);
      quietTimer = setTimeout(() => finish('settled'), removalSeen ? quietMs : addedQuietMs);
    };
    // Only this device's objects: a settle wait per device costs nothing when others change.
    const off = bluez.mirror.onPath(path, onChange, { subtree: true });
    const deadlineTimer = setTimeout(
      () => finish('deadline'),
      Math.max(0, options.untilMs - performance.now()),
    );
    signal.addEventListener('abort', onAbort, { once: true });
    if (linkDown()) finish('disconnected');
  });
}
