/**
 * The adapter pool with cross-process slots: while another service (a Python process using
 * fcntl.flock on the same files) holds every slot of the adapter, the pool's device waits in
 * `locking` and sends no Connect; it connects once the other service lets go.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { heldLocks } from '../../src/lock/index.js';
import { topLevelState } from '../../src/machines/state-trail.js';
import { eventually, peripheral, startPoolWorld, type PoolWorld } from '../pool/sim-harness.js';
import { startPythonHolder, type PythonHolder } from './python-holder.js';

const MAC = 'C8:47:8C:00:00:31';
let world: PoolWorld | undefined;
let dir: string | undefined;
const pythons: PythonHolder[] = [];

afterEach(async () => {
  for (const p of pythons.splice(0)) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
  await world?.stop();
  world = undefined;
  expect(heldLocks()).toEqual([]);
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('the adapter pool and other services on the same adapter', () => {
  it('waits for a slot another service holds instead of calling Connect into the adapter, then connects', async () => {
    dir = mkdtempSync(join(tmpdir(), 'bcm-pool-lock-'));
    const slots = [0, 1].map((s) => join(dir ?? '', `bleak-cm-hci0-slot-${s}.lock`));
    const holders = slots.map((path) => startPythonHolder([path], -1));
    pythons.push(...holders);
    await Promise.all(holders.map((h) => h.held));
    world = await startPoolWorld(
      { adapters: [{ name: 'hci0' }], devices: [peripheral(MAC, { knownOn: ['hci0'] })] },
      { lock: { dir, maxSlots: 2, retryIntervalMs: 20, timeoutMs: 60_000 } },
    );
    const pool = world.pool;
    const child = pool.connect(MAC);
    await eventually(
      'the child waits for a slot',
      () => topLevelState(child.getSnapshot().value) === 'locking',
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(topLevelState(child.getSnapshot().value)).toBe('locking');
    expect(world.env.sim.calls.filter((c) => c.member === 'Connect')).toEqual([]);
    holders[1]?.child.kill('SIGKILL');
    await pool.connected(MAC);
    expect(world.simLinks().hci0).toEqual([MAC]);
    // The slot went back when validation began; the connected device holds none.
    expect(heldLocks()).toEqual([]);
  }, 60_000);
});

describe('the pool counts connect attempts of other processes', () => {
  it('a slot file another process holds on hci0 counts as a taken controller slot: the device goes to hci1', async () => {
    dir = mkdtempSync(join(tmpdir(), 'bcm-pool-foreign-'));
    const other = startPythonHolder([join(dir, 'bleak-cm-hci0-slot-0.lock')], -1);
    pythons.push(other);
    await other.held;
    // One link per adapter: the other process's attempt fills hci0.
    world = await startPoolWorld(
      { adapters: [{ name: 'hci0' }, { name: 'hci1' }], devices: [peripheral(MAC)] },
      { slotsPerAdapter: 1, lock: { dir, maxSlots: 2, retryIntervalMs: 20 } },
    );
    const pool = world.pool;
    await eventually('the foreign attempt is seen', () =>
      pool.snapshot().adapters.some((a) => a.name === 'hci0' && a.foreignAttempts === 1),
    );
    const connection = await pool.connected(MAC);
    expect(connection.adapter).toBe('hci1');
    expect(world.env.sim.calls.filter((c) => c.member === 'Connect').map((c) => c.path)).toEqual([
      `/org/bluez/hci1/dev_${MAC.replaceAll(':', '_')}`,
    ]);
    // The other process is done: hci0 is free again in the pool's accounting.
    other.child.kill('SIGKILL');
    await other.exited;
    await eventually('the foreign attempt is gone', () =>
      pool.snapshot().adapters.every((a) => a.foreignAttempts === 0),
    );
  }, 60_000);
});
