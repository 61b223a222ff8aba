/** Link loss on real BlueZ: the peripheral's radio goes off, then comes back. */
import { expect } from 'vitest';
import { createAdapterPool } from '../../../../src/index.js';
import type { LibraryScenario } from '../types.js';

export const linkLossScenarios: LibraryScenario[] = [
  {
    name: 'link loss is reported by the pool and the device is connected again once it is back',
    timeoutMs: 150_000,
    async run(ctx) {
      const bluez = await ctx.openBluez();
      const pool = createAdapterPool({
        bluez,
        defaults: { attemptTimeoutMs: 30_000 },
      });
      ctx.defer(() => pool.close());
      const events: string[] = [];
      const sub = pool.actor.on('*', (e) => {
        if ('address' in e) events.push(`${Math.round(ctx.elapsed())} ${e.type}`);
      });
      ctx.defer(() => sub.unsubscribe());
      const first = await pool.connected(ctx.peripheral, { signal: AbortSignal.timeout(90_000) });
      ctx.log(`connected on ${first.adapter}`);
      expect(first.adapter).toBe(ctx.central);
      const lostAt = ctx.elapsed();
      await ctx.target.linkLoss();
      await waitEvent(events, 'device-link-lost', 30_000);
      ctx.log(`link loss reported ${ctx.elapsed() - lostAt} ms after hci1 was powered off`);
      const backAt = ctx.elapsed();
      await ctx.target.peripheralBack();
      await waitEvent(events, 'device-connected', 60_000, 2);
      ctx.log(`connected again ${ctx.elapsed() - backAt} ms after hci1 was powered on again`);
      ctx.log(`pool events: ${events.join(', ')}`);
      await pool.disconnect(ctx.peripheral);
    },
  },
];

/** Resolves once `events` holds `count` entries of `type`. */
async function waitEvent(events: string[], type: string, ms: number, count = 1): Promise<void> {
  const end = performance.now() + ms;
  while (events.filter((e) => e.endsWith(` ${type}`)).length < count) {
    if (performance.now() > end)
      throw new Error(`no ${type} (#${count}) within ${ms} ms: ${events.join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
