/**
 * Late GATT under a real Service Changed: the peripheral adds the service the validator needs just
 * after the link comes up. bluetoothd 5.66 then removes the existing service's objects one by one
 * and exports the new tree about 120-150 ms later; the connection must wait for it by time, not
 * by counting changes, and connect in the same attempt.
 */
import { expect } from 'vitest';
import { establishConnection, characteristicExists } from '../../../../src/index.js';
import { LATE_CHAR_UUID } from '../../../conformance/peripheral-spec.js';
import type { LibraryScenario } from '../types.js';

export const lateGattScenarios: LibraryScenario[] = [
  {
    name: 'a late service: connected in ONE attempt, within 0.5 s of the characteristic being exported',
    async run(ctx) {
      const watcher = await ctx.openBluez();
      let exportedAt: number | undefined;
      const off = watcher.mirror.on('change', (c) => {
        if (
          exportedAt === undefined &&
          c.type === 'interfacesAdded' &&
          c.interfaces.includes('org.bluez.GattCharacteristic1') &&
          watcher.mirror.characteristic(c.path)?.uuid.toLowerCase() === LATE_CHAR_UUID
        ) {
          exportedAt = performance.now();
        }
      });
      ctx.defer(off);
      const needsLate = characteristicExists(LATE_CHAR_UUID);
      let added: Promise<void> | undefined;
      let connectedAt: number | undefined;
      const conn = await establishConnection({
        address: ctx.peripheral,
        busAddress: ctx.busAddress,
        adapters: [ctx.central],
        attemptTimeoutMs: 30_000,
        overallTimeoutMs: 90_000,
        validate: async (v) => {
          // The first check: the link is up, the late service is not there yet; the peripheral adds it now.
          if (added === undefined) {
            ctx.log('first validation; the peripheral adds its late service');
            added = ctx.target.addLateService();
          }
          return needsLate(v);
        },
        // When the connection actor reaches `connected` (establishConnection then builds node-ble's
        // objects before it resolves; that part is logged, not asserted here).
        inspect: (e) => {
          if (e.type !== '@xstate.snapshot' || connectedAt !== undefined) return;
          if ((e.snapshot as { value?: unknown }).value === 'connected') connectedAt = performance.now();
        },
      });
      const resolvedAt = performance.now();
      ctx.defer(() => conn.disconnect());
      await added;
      if (exportedAt === undefined) throw new Error('the late characteristic was never seen exported');
      const lagMs = Math.round(resolvedAt - exportedAt);
      ctx.log(
        `attempts: ${conn.attempts.length}; resolved ${lagMs} ms after the characteristic was exported`,
      );
      expect(conn.attempts).toHaveLength(1);
      expect(lagMs).toBeLessThan(500);
    },
  },
];
