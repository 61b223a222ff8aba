/**
 * The escalation decision is taken once per failure (`decideOnce` on entering `escalating`, kept
 * in context): whichever moment the clock crosses an adapter's reset cooldown, the step taken is
 * one the policy gives for one reading of the clock, here clear (before the boundary) or reset
 * (after it), never the plain retry that neither reading gives.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InProgressError } from '../../src/bluez/errors.js';
import { DEFAULT_ESCALATION } from '../../src/machines/profiles.js';
import { baseInput, fail, startScripted } from './scripted-actors.js';

const T0 = 1_000_000_000;
const COOLDOWN = 60_000;

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe('one escalation decision per failure', () => {
  it('a reset cooldown that ends at any clock reading during the decision gives clear or reset, never retry', async () => {
    const seen = new Set<string>();
    for (let boundary = 0; boundary < 40; boundary++) {
      // Every Date.now() reading advances the clock by 1 ms, so the cooldown ends at reading `boundary`.
      let reading = 0;
      vi.spyOn(Date, 'now').mockImplementation(() => T0 + reading++);
      const h = startScripted(
        baseInput({
          maxAttempts: 2,
          escalation: {
            ...DEFAULT_ESCALATION,
            diagnose: false,
            rotate: false,
            clear: true,
            clearAfter: 1,
            reset: true,
            resetAfter: 1,
            resetCooldownMs: COOLDOWN,
          },
          // A streak on hci0 and a reset whose cooldown ends `boundary` ms after T0.
          ledger: { failures: { hci0: 3 }, lastResetAt: { hci0: T0 + boundary - COOLDOWN } },
        }),
        { connectWithDeadline: [fail(new InProgressError('Operation already in progress'))] },
      );
      h.actor.send({ type: 'CONNECT' });
      await h.runUntil(() => h.actor.getSnapshot().context.attempts[0]?.escalation != null, 1000);
      const decision = h.actor.getSnapshot().context.attempts[0]?.escalation;
      expect(['clear', 'reset'], `cooldown ending at clock reading ${boundary}`).toContain(decision);
      expect(h.actor.getSnapshot().context.decision).toBe(decision);
      seen.add(String(decision));
      h.actor.stop();
      vi.restoreAllMocks();
    }
    // The boundary fell before the decision in some runs and after it in others.
    expect([...seen].sort()).toEqual(['clear', 'reset']);
  });
});
