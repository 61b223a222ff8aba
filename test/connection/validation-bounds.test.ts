/**
 * Validation is bounded and only waits for what can still appear (the `validating` state,
 * docs/architecture.md): a validator that never resolves ends the attempt at attemptTimeoutMs
 * with its signal aborted, the link torn down and the device lock released; a validator that
 * throws (a failed read) fails the attempt at once instead of waiting out lateGattDelaysMs; a
 * validator that reports a missing characteristic still gets the late-GATT waits.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { busyDeviceLocks } from '../../src/actors/device-lock.js';
import { ConnectionFailedError } from '../../src/bluez/errors.js';
import { establishConnection } from '../../src/connection/establish.js';
import type { ValidationContext } from '../../src/connection/validators.js';
import { bms, scenarioOptions, simDevice, startWorld, type World } from './harness.js';

let world: World | undefined;

afterEach(async () => {
  await world?.stop();
  world = undefined;
});

async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('establishConnection resolved, a rejection was expected');
}

describe('validation is bounded', () => {
  it('a validator that never resolves ends at attemptTimeoutMs: its signal aborted, the link down, the lock free', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    const signals: AbortSignal[] = [];
    const options = scenarioOptions(world, {
      maxAttempts: 1,
      attemptTimeoutMs: 600,
      // A bound for the old behaviour (no deadline in validating): it ends with a TimeoutError.
      overallTimeoutMs: 15_000,
      validate: ({ signal }: ValidationContext) => {
        signals.push(signal);
        return new Promise<boolean>(() => {});
      },
    });
    const err = await failure(establishConnection(options));
    expect(err).toBeInstanceOf(ConnectionFailedError);
    const failed = err as ConnectionFailedError;
    expect(failed.attempts.map((a) => [a.errorClass, a.code])).toEqual([
      ['validation', 'VALIDATION_DEADLINE'],
    ]);
    expect(failed.attempts[0]?.message).toMatch(/attemptTimeoutMs \(600 ms\)/);
    expect(signals).toHaveLength(1);
    expect(signals[0]?.aborted).toBe(true);
    // The attempt went through the teardown: nothing left connected in BlueZ, nothing locked.
    expect(options.trail.states).toEqual([
      'idle',
      'locking',
      'clearing-stale',
      'connecting',
      'validating',
      'disconnecting',
      'escalating',
      'failed',
    ]);
    expect(simDevice(world, 'hci0')?.connected).toBe(false);
    expect(busyDeviceLocks()).toEqual([]);
  });

  it('a validator that throws fails the attempt at once: one call, no late-GATT waits', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    let calls = 0;
    const options = scenarioOptions(world, {
      maxAttempts: 1,
      // Long waits that a throwing validator must not sit through (the old code called it again
      // at each of them: 3 calls).
      lateGattDelaysMs: [1500, 1500],
      validate: () => {
        calls += 1;
        throw new Error('read failed: org.bluez.Error.Failed');
      },
    });
    const err = await failure(establishConnection(options));
    expect(err).toBeInstanceOf(ConnectionFailedError);
    const failed = err as ConnectionFailedError;
    expect(failed.attempts.map((a) => [a.errorClass, a.code])).toEqual([['validation', 'VALIDATION_FAILED']]);
    expect(failed.attempts[0]?.message).toMatch(/the validator threw: read failed/);
    expect(failed.attempts[0]?.message).not.toMatch(/late GATT/);
    expect(calls).toBe(1);
    expect(simDevice(world, 'hci0')?.connected).toBe(false);
    expect(busyDeviceLocks()).toEqual([]);
  });

  it('a validator that reports a missing characteristic is asked again at each late-GATT checkpoint', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    let calls = 0;
    const options = scenarioOptions(world, {
      maxAttempts: 1,
      lateGattDelaysMs: [100, 100],
      validate: () => {
        calls += 1;
        return false;
      },
    });
    const err = await failure(establishConnection(options));
    const failed = err as ConnectionFailedError;
    expect(failed.attempts.map((a) => [a.errorClass, a.code])).toEqual([['validation', 'VALIDATION_FAILED']]);
    expect(failed.attempts[0]?.message).toMatch(
      /the validator returned false \(also after waiting \d+ ms for late GATT services\)/,
    );
    // Right after connect, then at the checkpoints (both, unless the first re-check ran so late
    // that the second checkpoint had passed as well).
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(calls).toBeLessThanOrEqual(3);
    expect(busyDeviceLocks()).toEqual([]);
  });
});
