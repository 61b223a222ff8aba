/**
 * bluetoothd restarts under the pool. The pool runs on both adapters the guest has: hci0, which
 * hears the peripheral, and hci1, the peripheral's own controller, which never sees it.
 */
import { expect } from 'vitest';
import { createAdapterPool } from '../../../../src/index.js';
import type { LibraryScenario } from '../types.js';

export const restartScenarios: LibraryScenario[] = [
  {
    name: 'bluetoothd restart: the pool (hci0 + hci1, device seen by hci0) connects again within one discovery round',
    timeoutMs: 180_000,
    async run(ctx) {
      const bluez = await ctx.openBluez();
      expect(
        bluez
          .adapters()
          .map((a) => a.name)
          .sort(),
      ).toEqual(['hci0', 'hci1']);
      const pool = createAdapterPool({ bluez, defaults: { attemptTimeoutMs: 30_000 } });
      ctx.defer(() => pool.close());
      const connectedAt: number[] = [];
      const sub = pool.actor.on('*', (e) => {
        if (e.type === 'device-connected') connectedAt.push(ctx.elapsed());
        ctx.log(`pool: ${JSON.stringify(e, (k, v: unknown) => (k === 'cause' ? String(v) : v))}`);
      });
      ctx.defer(() => sub.unsubscribe());
      await pool.connected(ctx.peripheral, { signal: AbortSignal.timeout(90_000) });
      await ctx.target.restartBluetoothd();
      ctx.log('bluetoothd restarted');
      await ctx.target.reRegisterPeripheral();
      const advertisingAt = ctx.elapsed();
      ctx.log('the peripheral advertises again');
      const end = performance.now() + 60_000;
      while (connectedAt.length < 2 && performance.now() < end) await new Promise((r) => setTimeout(r, 50));
      const again = connectedAt[1];
      const child = pool.child(ctx.peripheral)?.getSnapshot() as
        | {
            context?: {
              attempts?: Array<{
                adapter: string;
                outcome: string;
                durationMs: number | null;
                cause: { class: string; message: string } | null;
              }>;
            };
          }
        | undefined;
      for (const a of child?.context?.attempts ?? []) {
        ctx.log(
          `attempt on ${a.adapter}: ${a.outcome} ${a.durationMs ?? '?'} ms ${a.cause ? `${a.cause.class}: ${a.cause.message}` : ''}`,
        );
      }
      if (again === undefined)
        throw new Error(`not connected again within 60 s: ${JSON.stringify(pool.snapshot())}`);
      ctx.log(`connected again ${again - advertisingAt} ms after the peripheral advertised again`);
      expect(again - advertisingAt).toBeLessThan(12_000);
      await pool.disconnect(ctx.peripheral);
    },
  },
];
