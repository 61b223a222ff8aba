/**
 * The connection actor's `locking` state with cross-process slots, against the simulator: another
 * service (a Python process using fcntl.flock on the same files) holding the slots, a planted
 * symlink, and every exit path giving the slot back.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { busyDeviceLocks } from '../../src/actors/device-lock.js';
import { LockTimeoutError } from '../../src/bluez/errors.js';
import { createConnectionActor, establishConnection } from '../../src/connection/establish.js';
import { openDiscoverySessions } from '../../src/discovery/index.js';
import { heldLocks, LockPathError } from '../../src/lock/index.js';
import {
  bms,
  deviceCalls,
  eventually,
  scenarioOptions,
  startWorld,
  type World,
} from '../connection/harness.js';
import { startPythonHolder, type PythonHolder } from './python-holder.js';

let world: World;
let dir: string;
const pythons: PythonHolder[] = [];

beforeEach(async () => {
  world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms(['hci0'])] });
  dir = mkdtempSync(join(tmpdir(), 'bcm-actor-lock-'));
});
afterEach(async () => {
  for (const p of pythons.splice(0)) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
  // Nothing outlives a connection: no slot, no device mutex, no discovery session.
  expect(heldLocks()).toEqual([]);
  expect(busyDeviceLocks()).toEqual([]);
  expect(openDiscoverySessions(world.bluez)).toEqual([]);
  await world.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function pythonHoldsSlot0(): Promise<void> {
  const p = startPythonHolder([join(dir, 'bleak-cm-hci0-slot-0.lock')], -1);
  pythons.push(p);
  await p.held;
}

describe('connection slots in the locking state', () => {
  it('a slot held elsewhere past the timeout: the attempt goes on without it, with a warning, after timeout and before one more interval', async () => {
    await pythonHoldsSlot0();
    const warnings: string[] = [];
    const options = scenarioOptions(world, {
      lock: { dir, maxSlots: 1, timeoutMs: 400, retryIntervalMs: 100 },
      logger: { warn: (_fields, m) => warnings.push(m) },
    });
    const connection = await establishConnection(options);
    try {
      expect(warnings.some((w) => /no connection slot free on hci0 within \d+ ms/.test(w))).toBe(true);
      // The waited time the library measured, from the event it emitted.
      const waited = Number(/within (\d+) ms/.exec(warnings.find((w) => w.includes('slot')) ?? '')?.[1]);
      expect(waited).toBeGreaterThanOrEqual(400);
      expect(waited).toBeLessThan(400 + 100);
      expect(options.trail.settled.slice(0, 3)).toEqual(['idle', 'locking', 'clearing-stale']);
    } finally {
      await connection.disconnect();
    }
  });

  it('strict: LockTimeoutError, and no Connect was sent', async () => {
    await pythonHoldsSlot0();
    const err = await establishConnection(
      scenarioOptions(world, {
        lock: { dir, maxSlots: 1, timeoutMs: 300, retryIntervalMs: 50, strict: true },
      }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect((err as LockTimeoutError).adapter).toBe('hci0');
    expect(deviceCalls(world)).not.toContain('Connect');
  });

  it('a symlink planted at the slot path: LockPathError, nothing written through it, no Connect', async () => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'keep');
    symlinkSync(victim, join(dir, 'bleak-cm-hci0-slot-0.lock'));
    const err = await establishConnection(scenarioOptions(world, { lock: { dir, maxSlots: 1 } })).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LockPathError);
    expect(readFileSync(victim, 'utf8')).toBe('keep');
    expect(deviceCalls(world)).not.toContain('Connect');
  });

  it('the slot is held through Connect and given back before validation', async () => {
    const heldDuringValidation: number[] = [];
    const connection = await establishConnection(
      scenarioOptions(world, {
        lock: { dir, maxSlots: 1 },
        validate: () => {
          heldDuringValidation.push(heldLocks().length);
          return true;
        },
      }),
    );
    expect(heldDuringValidation).toEqual([0]);
    expect(connection.actor.getSnapshot().context.slotLease).toBeNull();
    await connection.disconnect();
  });

  it('cancelled while waiting for a slot: AbortError at once, nothing held', async () => {
    await pythonHoldsSlot0();
    const controller = new AbortController();
    const pending = establishConnection(
      scenarioOptions(world, { lock: { dir, maxSlots: 1, timeoutMs: 60_000 }, signal: controller.signal }),
    ).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 200));
    controller.abort();
    expect(((await pending) as Error).name).toBe('AbortError');
  });

  it('an actor stopped while its Connect is pending gives its slot back', async () => {
    world.env.sim.inject({
      kind: 'hang',
      target: { device: 'AA:BB:CC:DD:EE:01' },
      interface: 'org.bluez.Device1',
      member: 'Connect',
    });
    const actor = createConnectionActor({
      ...scenarioOptions(world),
      bluez: world.bluez,
      lock: { dir, maxSlots: 1 },
    });
    actor.send({ type: 'CONNECT' });
    await eventually('connecting with a slot', () =>
      actor.getSnapshot().matches({ establishing: { connecting: 'requesting' } }),
    );
    expect(heldLocks().map((l) => l.slot)).toEqual([0]);
    actor.stop();
    expect(heldLocks()).toEqual([]);
  });
});
