/** The escalation decision as a pure function, and the profiles with the original's numbers. */
import { describe, expect, it } from 'vitest';
import {
  decideEscalation,
  emptyLedger,
  recordFailure,
  recordReset,
  recordSuccess,
  type EscalationConfig,
  type EscalationLedger,
} from '../../src/machines/escalation.js';
import { EscalationPolicy, resolveEscalationConfig } from '../../src/machines/escalation-policy.js';
import {
  DEFAULT_ESCALATION,
  PROFILE_BATTERY,
  PROFILE_ON_DEMAND,
  PROFILE_SENSOR,
} from '../../src/machines/profiles.js';

const NOW = 10_000_000;

/** Decisions for failures 1..n on hci0 with no success in between. */
function ladder(
  config: EscalationConfig,
  n: number,
  canRotate: boolean,
  failureClass = 'aborted' as const,
): string[] {
  let ledger: EscalationLedger = emptyLedger();
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    ledger = recordFailure(ledger, 'hci0');
    const action = decideEscalation(config, ledger, { adapter: 'hci0', failureClass, now: NOW, canRotate });
    out.push(action);
    if (action === 'reset') ledger = recordReset(ledger, 'hci0', NOW);
  }
  return out;
}

describe('escalation decision', () => {
  it('SPEC §6 default: diagnose at 1, rotate at 2–3, clear from 4, reset off', () => {
    expect(ladder(DEFAULT_ESCALATION, 7, true)).toEqual([
      'diagnose',
      'rotate',
      'rotate',
      'clear',
      'clear',
      'clear',
      'clear',
    ]);
  });

  it('rotation is only chosen when it can change the adapter (one adapter, no pool → diagnose)', () => {
    expect(ladder(DEFAULT_ESCALATION, 3, false)).toEqual(['diagnose', 'diagnose', 'diagnose']);
  });

  it('battery profile: reset at 6; the counter restarts and the cooldown blocks a second reset', () => {
    expect(ladder(PROFILE_BATTERY, 13, true)).toEqual([
      'diagnose',
      'rotate',
      'rotate',
      'clear',
      'clear',
      'reset',
      'diagnose',
      'rotate',
      'rotate',
      'clear',
      'clear',
      'clear',
      'clear',
    ]);
  });

  it('a reset is allowed again once resetCooldownMs has passed, and on a never-reset adapter at uptime 0', () => {
    let ledger = recordReset(emptyLedger(), 'hci0', NOW);
    for (let i = 0; i < 6; i++) ledger = recordFailure(ledger, 'hci0');
    const ask = (now: number) =>
      decideEscalation(PROFILE_BATTERY, ledger, {
        adapter: 'hci0',
        failureClass: 'other',
        now,
        canRotate: false,
      });
    expect(ask(NOW + 299_999)).toBe('clear');
    expect(ask(NOW + 300_000)).toBe('reset');
    // The original used 0.0 as "never", which blocked resets for the first 300 s of uptime (B9).
    let fresh = emptyLedger();
    for (let i = 0; i < 6; i++) fresh = recordFailure(fresh, 'hci1');
    expect(
      decideEscalation(PROFILE_BATTERY, fresh, {
        adapter: 'hci1',
        failureClass: 'other',
        now: 5,
        canRotate: false,
      }),
    ).toBe('reset');
  });

  it('sensor profile never resets and clears from 4 (clear sits below the rotate ceiling)', () => {
    expect(ladder(PROFILE_SENSOR, 8, true)).toEqual([
      'diagnose',
      'rotate',
      'rotate',
      'clear',
      'clear',
      'clear',
      'clear',
      'clear',
    ]);
  });

  it('onDemand profile rotates on every failure, and falls back to retry with nothing to rotate to', () => {
    expect(ladder(PROFILE_ON_DEMAND, 3, true)).toEqual(['rotate', 'rotate', 'rotate']);
    expect(ladder(PROFILE_ON_DEMAND, 3, false)).toEqual(['diagnose', 'diagnose', 'diagnose']);
  });

  it('out of slots rotates on the first failure when another adapter exists', () => {
    expect(ladder(DEFAULT_ESCALATION, 1, true, 'outOfSlots' as never)).toEqual(['rotate']);
  });

  it('a full adapter is never reset: out-of-slots refusals rotate (or retry), even at and past the reset threshold', () => {
    const eager: EscalationConfig = { ...PROFILE_BATTERY, resetAfter: 1, clearAfter: 1 };
    // Refused ten times in a row (a device waiting for a slot is refused again after each park).
    expect(ladder(eager, 10, true, 'outOfSlots' as never)).toEqual(Array(10).fill('rotate'));
    expect(ladder(eager, 10, false, 'outOfSlots' as never)).toEqual(Array(10).fill('retry'));
    // Even when other failures already brought the adapter to the threshold.
    let ledger = emptyLedger();
    for (let i = 0; i < 6; i++) ledger = recordFailure(ledger, 'hci0', 'aborted');
    const ask = (failureClass: 'outOfSlots' | 'aborted', canRotate: boolean) =>
      decideEscalation(PROFILE_BATTERY, ledger, { adapter: 'hci0', failureClass, now: NOW, canRotate });
    expect(ask('outOfSlots', true)).toBe('rotate');
    expect(ask('outOfSlots', false)).toBe('retry');
    // The other classes keep the original's order (reset first at the threshold).
    expect(ask('aborted', true)).toBe('reset');
  });

  it('out-of-slots refusals do not count toward the thresholds; the other classes count as in the original', () => {
    let ledger = emptyLedger();
    for (let i = 0; i < 5; i++) ledger = recordFailure(ledger, 'hci0', 'outOfSlots');
    expect(ledger.failures).toEqual({});
    // One genuine failure after five refusals for lack of slots is the adapter's first, not its sixth.
    ledger = recordFailure(ledger, 'hci0', 'aborted');
    expect(ledger.failures).toEqual({ hci0: 1 });
    expect(
      decideEscalation(PROFILE_BATTERY, ledger, {
        adapter: 'hci0',
        failureClass: 'aborted',
        now: NOW,
        canRotate: true,
      }),
    ).toBe('diagnose');
    // A shared policy leaves them out as well.
    const policy = new EscalationPolicy('battery');
    for (let i = 0; i < 7; i++)
      policy.apply({ kind: 'failure', adapter: 'hci0', failureClass: 'outOfSlots' });
    policy.apply({ kind: 'failure', adapter: 'hci0', failureClass: 'validation' });
    policy.apply({ kind: 'failure', adapter: 'hci0' });
    expect(policy.failureCount('hci0')).toBe(2);
  });

  it('failures are counted per adapter and a success ends the streak', () => {
    let ledger = recordFailure(recordFailure(emptyLedger(), 'hci0'), 'hci1');
    ledger = recordFailure(ledger, 'hci0');
    expect(ledger.failures).toEqual({ hci0: 2, hci1: 1 });
    ledger = recordSuccess(ledger, 'hci0');
    expect(ledger.failures).toEqual({ hci0: 0, hci1: 1 });
  });

  it('maxLevel is a ceiling: levels above it are off even when enabled', () => {
    const config = { ...DEFAULT_ESCALATION, maxLevel: 'diagnose' as const };
    expect(ladder(config, 5, true)).toEqual(['diagnose', 'diagnose', 'diagnose', 'diagnose', 'diagnose']);
  });
});

describe('profiles and policies', () => {
  it("profiles are frozen, so one caller cannot change another caller's policy", () => {
    expect(Object.isFrozen(PROFILE_BATTERY)).toBe(true);
    expect(() => {
      (PROFILE_BATTERY as { resetAfter: number }).resetAfter = 1;
    }).toThrow(TypeError);
  });

  it('a shared policy keeps its ledger across connections', () => {
    const policy = new EscalationPolicy('battery');
    policy.apply({ kind: 'failure', adapter: 'hci0' });
    policy.apply({ kind: 'failure', adapter: 'hci0' });
    expect(policy.failureCount('hci0')).toBe(2);
    policy.apply({ kind: 'reset', adapter: 'hci0', at: NOW });
    expect(policy.failureCount('hci0')).toBe(0);
    expect(policy.snapshot().lastResetAt).toEqual({ hci0: NOW });
    expect(policy.config).toBe(PROFILE_BATTERY);
  });

  it('bad configurations are rejected with the field named', () => {
    expect(() => resolveEscalationConfig('fast' as never)).toThrow(
      /escalation must be one of battery, sensor, onDemand/,
    );
    expect(() => resolveEscalationConfig({ rotateAfter: 0 })).toThrow(RangeError);
    expect(() => resolveEscalationConfig({ rotateAfter: 0 })).toThrow(/escalation\.rotateAfter/);
    expect(() => resolveEscalationConfig({ resetCooldownMs: Number.NaN })).toThrow(
      /escalation\.resetCooldownMs/,
    );
    expect(() => resolveEscalationConfig({ maxLevel: 'nuke' as never })).toThrow(/escalation\.maxLevel/);
    expect(resolveEscalationConfig({ reset: true }).reset).toBe(true);
  });
});
