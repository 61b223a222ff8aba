/**
 * The stall guard with a really blocked event loop. The library runs in a child process (blocking
 * the test's own thread would block the simulator too) against the simulator on this test's private
 * bus. Its Connect is held pending for 10 s (connect-latency) while its main thread busy-loops for
 * 3 s with stallGuardMs 1000: the simulator must receive Disconnect for that device on that adapter
 * from the guard worker's own bus connection during the block; afterwards the attempt is recorded
 * `stalled`, the next attempt connects, and close() leaves nothing that keeps the child alive.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCliPackage, type CliPackage } from '../cli/harness.js';
import { DEVICE, bms, eventually, simDevice, startWorld, type World } from '../connection/harness.js';
import { createConnectionActor } from '../../src/connection/establish.js';
import { createAdapterPool } from '../../src/pool/create-adapter-pool.js';

const here = fileURLToPath(new URL('.', import.meta.url));

function lines(out: string): Array<Record<string, unknown>> {
  return out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('stall guard (child process, real worker thread, private bus)', () => {
  let pkg: CliPackage;
  let world: World | undefined;
  beforeAll(() => {
    pkg = buildCliPackage();
    copyFileSync(join(here, 'stall-child.mjs'), join(pkg.root, 'stall-child.mjs'));
  });
  afterAll(async () => {
    pkg.cleanup();
    await world?.stop();
  });

  it('a 3 s busy loop during a pending Connect on hci1: the worker cancels it out of band, the attempt is `stalled`, the next one connects', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }, { name: 'hci1' }], devices: [bms(['hci1'])] });
    const latency = world.env.sim.inject({ kind: 'connect-latency', target: { device: DEVICE }, ms: 10_000 });
    const child = pkg.node(join(pkg.root, 'stall-child.mjs'), [DEVICE, 'hci1', '3000'], {
      DBUS_SYSTEM_BUS_ADDRESS: world.env.address,
    });
    try {
      await eventually(
        'block started',
        () => {
          if (child.child.exitCode !== null) {
            throw new Error(`child exited ${child.child.exitCode}: ${child.out()} ${child.err()}`);
          }
          return lines(child.out()).some((l) => l.type === 'block-start');
        },
        45_000,
      );
      // Watch for the Disconnect from this (unblocked) process while the child is blocked.
      let disconnectSeenAt: number | undefined;
      await eventually(
        'Disconnect from the guard',
        () => {
          const hit = world!.env.sim.calls.some(
            (c) => c.member === 'Disconnect' && c.path.endsWith('hci1/dev_AA_BB_CC_DD_EE_01'),
          );
          if (hit) disconnectSeenAt ??= Date.now();
          return hit;
        },
        10_000,
      );
      latency.clear(); // the next Connect is quick
      const code = await child.exit;
      const out = lines(child.out());
      expect(child.err()).toContain('stall guard: event loop blocked for');
      expect(code).toBe(0);
      const names = out.find((l) => l.type === 'names') as { main: string; worker: string };
      const blockStart = (out.find((l) => l.type === 'block-start') as { at: number }).at;
      const blockEnd = (out.find((l) => l.type === 'block-end') as { at: number }).at;
      // During the block, from the worker's own connection, on hci1 only.
      expect(disconnectSeenAt).toBeGreaterThan(blockStart);
      expect(disconnectSeenAt).toBeLessThan(blockEnd);
      const disconnects = world.env.sim.calls.filter((c) => c.member === 'Disconnect');
      expect(disconnects[0]?.sender).toBe(names.worker);
      expect(names.worker).not.toBe(names.main);
      expect(disconnects[0]?.path).toBe('/org/bluez/hci1/dev_AA_BB_CC_DD_EE_01');
      expect(world.env.sim.calls.filter((c) => c.path.startsWith('/org/bluez/hci0/'))).toEqual([]);
      const connected = out.find((l) => l.type === 'connected') as {
        attempts: Array<{ number: number; outcome: string; class: string | null; message: string | null }>;
        delay: { maxMs: number; stallsHandled: number };
        warnings: string[];
      };
      expect(connected.attempts.map((a) => [a.number, a.outcome, a.class])).toEqual([
        [1, 'failed', 'stalled'],
        [2, 'connected', null],
      ]);
      expect(connected.attempts[0]?.message).toMatch(/blocked for \d+ ms .*Disconnect: sent/);
      expect(connected.delay.stallsHandled).toBe(1);
      // The slot lock the child announced was released by the worker (its fd closed during the
      // block); the lock module is told not to close it again.
      expect(out.find((l) => l.type === 'lock')).toEqual({
        type: 'lock',
        releasedByGuard: true,
        lockFdOpen: false,
        held: 0,
      });
      expect(connected.attempts[0]?.message).toContain('locks released: 1');
      expect(connected.delay.maxMs).toBeGreaterThanOrEqual(2900);
      expect(connected.warnings.some((w) => w.includes('the stall guard sent Disconnect (sent)'))).toBe(true);
      console.log(
        `block ${blockEnd - blockStart} ms; Disconnect seen ${disconnectSeenAt! - blockStart} ms into it; loop delay max ${Math.round(connected.delay.maxMs)} ms`,
      );
      // close(): nothing left that could keep the child alive, and it exited by itself.
      const closed = out.find((l) => l.type === 'closed') as { resources: string[] };
      expect(closed.resources.filter((r) => r !== 'TTYWrap' && r !== 'PipeWrap')).toEqual([]);
      expect(simDevice(world, 'hci1')?.connected).toBe(false);
    } finally {
      if (child.child.exitCode === null) child.child.kill('SIGKILL');
    }
  }, 120_000);

  it('bad values are rejected by field name before anything starts', () => {
    const bluez = { connect() {} } as never;
    for (const [value, message] of [
      [50, /stallGuardMs must be >= 100/],
      ['45s', /stallGuardMs/],
      [-1, /stallGuardMs/],
    ] as const) {
      expect(() => createConnectionActor({ address: DEVICE, bluez, stallGuardMs: value as never })).toThrow(
        message,
      );
    }
    expect(() => createAdapterPool({ bluez, defaults: { stallGuardMs: 5 } })).toThrow(
      /stallGuardMs must be >= 100/,
    );
    expect(() => createConnectionActor({ address: DEVICE, bluez, keepAlive: 'yes' as never })).toThrow(
      /keepAlive/,
    );
    expect(() => createConnectionActor({ address: DEVICE, bluez, watchdog: {} as never })).toThrow(
      /watchdog.timeoutMs is required/,
    );
    expect(() =>
      createConnectionActor({
        address: DEVICE,
        bluez,
        watchdog: { timeoutMs: 1000, action: 'reset' as never },
      }),
    ).toThrow(/watchdog.action/);
    expect(() => createConnectionActor({ address: DEVICE, bluez, watchdog: 'relay' as never })).toThrow(
      /watchdog/,
    );
  });
});
