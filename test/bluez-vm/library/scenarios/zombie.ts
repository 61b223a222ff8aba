/**
 * A zombie link on real BlueZ: the peripheral stops notifying while the link and the subscription
 * stay up (bluetoothd keeps Connected=true and signals nothing). The library's watchdog declares the
 * zombie, tears the link down on the central adapter, and keep-alive connects again.
 */
import { expect } from 'vitest';
import { establishConnection } from '../../../../src/index.js';
import { topLevelState, type ZombieReport } from '../../../../src/machines/index.js';
import { NOTIFY_CHAR_UUID, NOTIFY_INTERVAL_MS } from '../../../conformance/peripheral-spec.js';
import { eventually } from '../helpers.js';
import type { LibraryScenario } from '../types.js';

export const zombieScenarios: LibraryScenario[] = [
  {
    name: 'the watchdog declares a silent link a zombie, disconnects it on hci0 and keep-alive reconnects',
    timeoutMs: 180_000,
    async run(ctx) {
      const bluez = await ctx.openBluez();
      // Fifteen notification periods: no false zombie from a slow guest, quick enough for the tier.
      const timeoutMs = 15 * NOTIFY_INTERVAL_MS;
      const conn = await establishConnection({
        address: ctx.peripheral,
        bluez,
        adapters: [ctx.central],
        attemptTimeoutMs: 30_000,
        overallTimeoutMs: 90_000,
        watchdog: { timeoutMs },
        keepAlive: true,
      });
      ctx.defer(() => conn.disconnect());
      const states: string[] = [];
      const stateSub = conn.actor.subscribe((s) => {
        const v = topLevelState(s.value);
        if (v !== '' && states[states.length - 1] !== v) states.push(v);
      });
      ctx.defer(() => stateSub.unsubscribe());
      const zombies: Array<ZombieReport & { at: number }> = [];
      const zombieSub = conn.actor.on('zombie', (e) => zombies.push({ ...e, at: performance.now() }));
      ctx.defer(() => zombieSub.unsubscribe());
      const chr = bluez
        .gattServices(ctx.central, ctx.peripheral)
        .flatMap((s) => s.characteristics)
        .find((c) => c.uuid === NOTIFY_CHAR_UUID);
      if (chr === undefined) throw new Error('notify characteristic not exported');
      const arrivals: number[] = [];
      const notify = await bluez.startNotify(chr.path, () => arrivals.push(performance.now()), {
        timeoutMs: 10_000,
      });
      ctx.defer(() => notify.stop({ timeoutMs: 5000 }).catch(() => {}));
      await eventually('notifications flowing', () => arrivals.length >= 10, 30_000);
      expect(zombies).toEqual([]);
      await ctx.target.silenceNotifications();
      await eventually('zombie declared', () => zombies.length > 0, timeoutMs * 10);
      const zombie = zombies[0];
      if (zombie === undefined) throw new Error('no zombie');
      const silence = zombie.at - (arrivals[arrivals.length - 1] ?? 0);
      ctx.log(
        `zombie after ${Math.round(silence)} ms of silence (timeoutMs ${timeoutMs}, watchdog: ${zombie.silenceMs})`,
      );
      expect(zombie.adapter).toBe(ctx.central);
      expect(silence).toBeGreaterThanOrEqual(timeoutMs - 1);
      expect(bluez.device(ctx.central, ctx.peripheral)?.connected).toBe(true); // BlueZ: still connected
      await eventually(
        'reconnected',
        () =>
          conn.actor.getSnapshot().value === 'connected' &&
          conn.actor.getSnapshot().context.attempts.some((a) => a.number === 1 && a.outcome === 'connected'),
        90_000,
      );
      const attempts = conn.actor.getSnapshot().context.attempts;
      ctx.log(`states after the zombie: ${states.join(' → ')}`);
      expect(attempts[0]?.cause?.class).toBe('zombie');
      expect(states.slice(states.indexOf('disconnecting'))).toEqual(
        expect.arrayContaining(['disconnecting', 'locking', 'connecting', 'connected']),
      );
      expect(conn.adapter).toBe(ctx.central);
    },
  },
];
