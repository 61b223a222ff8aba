/**
 * The pool's per-event work follows what changed, not how many devices it manages: the index the
 * steps keep (slot use per adapter, links as sets, the queue) always equals the one derived from
 * scratch, one device's event visits a handful of table nodes whether the pool holds 40 devices or
 * 800, and devices asked for at once start a bounded number per turn.
 */
import { isDeepStrictEqual } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildPoolIndex, type PoolIndex } from '../../src/machines/adapter-pool-logic.js';
import { PersistentTable } from '../../src/machines/persistent-table.js';
import { startFakePool } from './fake-child.js';

const D = (n: number) =>
  `AA:00:00:00:${(n >> 8).toString(16).padStart(2, '0')}:${(n & 0xff).toString(16).padStart(2, '0')}`.toUpperCase();

let pools: Array<ReturnType<typeof startFakePool>> = [];
function fakePool(...args: Parameters<typeof startFakePool>) {
  const p = startFakePool(...args);
  pools.push(p);
  return p;
}
afterEach(() => {
  for (const p of pools) p.stop();
  pools = [];
  vi.useRealTimers();
});

/** The index without adapters nothing uses (the steps keep zero counts, a rebuild omits them). */
function normalized(index: PoolIndex): PoolIndex {
  const use = Object.fromEntries(
    Object.entries(index.use).filter(([, u]) => u.held !== 0 || u.heldLinked !== 0 || u.recovering !== 0),
  );
  return { use, queue: index.queue };
}

describe('the pool index', () => {
  it('equals the index rebuilt from scratch after every event of a busy scenario (links of ours and of others, resets, adapters and bluetoothd going away, crashes)', () => {
    const p = fakePool({ slotsPerAdapter: 2 });
    let checked = 0;
    const mismatches: string[] = [];
    p.pool.subscribe((snapshot) => {
      const ctx = snapshot.context;
      checked += 1;
      const rebuilt = normalized(buildPoolIndex(ctx.devices, ctx.links));
      const kept = normalized(ctx.index);
      if (!isDeepStrictEqual(rebuilt, kept))
        mismatches.push(`${JSON.stringify(kept)} != ${JSON.stringify(rebuilt)}`);
    });
    for (let i = 1; i <= 6; i += 1) p.admit(D(i));
    for (const i of [1, 2, 3]) p.child(D(i)).send({ type: 'TEST_CONNECTED' });
    // BlueZ shows our links and another service's link on hci0.
    p.pool.send({ type: 'ADAPTER_LINKS', name: 'hci0', connected: [D(1), D(3), 'BB:00:00:00:00:01'] });
    p.pool.send({ type: 'ADAPTER_LINKS', name: 'hci1', connected: [D(2)] });
    p.child(D(4)).send({ type: 'TEST_RESET' });
    p.child(D(1)).send({ type: 'TEST_LINK_LOST' });
    p.pool.send({ type: 'LINKS_CHANGED', name: 'hci0', up: [], down: [D(1)] });
    p.pool.send({ type: 'LINKS_CHANGED', name: 'hci1', up: [D(4), 'BB:00:00:00:00:02'], down: [] });
    p.pool.send({ type: 'LINKS_CHANGED', name: 'hci1', up: [], down: ['BB:00:00:00:00:02', D(4)] });
    p.child(D(4)).send({ type: 'TEST_RESET_DONE' });
    p.pool.send({ type: 'ADAPTER_GONE', name: 'hci1' });
    p.pool.send({ type: 'ADAPTER_PRESENT', name: 'hci1', powered: true });
    p.pool.send({ type: 'BLUEZ_DOWN' });
    p.pool.send({ type: 'BLUEZ_UP' });
    p.pool.send({ type: 'DISCONNECT_DEVICE', address: D(5) });
    p.pool.send({ type: 'DISCONNECT_DEVICE', address: D(3) });
    p.child(D(6)).send({ type: 'TEST_CRASH' });
    p.pool.send({ type: 'ADAPTER_LINKS', name: 'hci0', connected: [] });
    expect(checked).toBeGreaterThan(15);
    expect(mismatches).toEqual([]);
    // The scenario did exercise the index: devices held slots, waited and ran a reset.
    expect(p.emitted.some((e) => e.type === 'device-queued')).toBe(true);
    expect(p.emitted.some((e) => e.type === 'device-failed')).toBe(true);
  });

  it("one device's link loss, requeue and reconnect (its link down and up in BlueZ) visit no more table nodes with 800 devices than with 40 (no scan of every device or link per event)", () => {
    const workFor = (n: number): number => {
      const p = fakePool({ slotsPerAdapter: n });
      for (let i = 1; i <= n; i += 1) p.admit(D(i));
      for (let i = 1; i <= n; i += 1) p.child(D(i)).send({ type: 'TEST_CONNECTED' });
      expect(p.ctx().devices.size).toBe(n);
      // BlueZ shows every device's link (on whichever adapter it was assigned).
      for (const name of ['hci0', 'hci1']) {
        const here = [...Array(n).keys()].map((i) => D(i + 1)).filter((a) => p.adapterOf(a) === name);
        p.pool.send({ type: 'ADAPTER_LINKS', name, connected: here });
      }
      const before = PersistentTable.work.nodes;
      // One device: its link drops (keep-alive: queued, started again at once), it connects again,
      // BlueZ hears it elsewhere.
      const one = D(Math.ceil(n / 2));
      const on = p.adapterOf(one) ?? '';
      p.child(one).send({ type: 'TEST_LINK_LOST' });
      p.pool.send({ type: 'LINKS_CHANGED', name: on, up: [], down: [one] });
      expect(p.status(one)).toBe('connecting');
      p.child(one).send({ type: 'TEST_CONNECTED' });
      p.pool.send({ type: 'LINKS_CHANGED', name: p.adapterOf(one) ?? '', up: [one], down: [] });
      p.pool.send({ type: 'SIGHTINGS', address: one, sightings: { hci0: -70 } });
      expect(p.status(one)).toBe('connected');
      return PersistentTable.work.nodes - before;
    };
    const small = workFor(40);
    const large = workFor(800);
    // A trie of 800 entries is one level deeper than one of 40, so each lookup costs at most 3/2 as
    // much; a scan of every device would add at least 800.
    expect(small).toBeGreaterThan(0);
    expect(large).toBeLessThan(2 * small);
  });

  it('a saturated pool (every slot taken) does not walk its queue on each event: 400 waiting devices cost what 40 do', () => {
    const workFor = (waiting: number): number => {
      const p = fakePool({ slotsPerAdapter: 2 });
      for (let i = 1; i <= 4 + waiting; i += 1) p.admit(D(i));
      for (let i = 1; i <= 4; i += 1) p.child(D(i)).send({ type: 'TEST_CONNECTED' });
      expect(p.ctx().index.queue).toHaveLength(waiting);
      const before = PersistentTable.work.nodes;
      // Events that each end in a dispatch attempt: a connected device heard elsewhere, another
      // service's attempt coming and going.
      p.pool.send({ type: 'SIGHTINGS', address: D(1), sightings: { hci0: -40, hci1: -70 } });
      p.pool.send({ type: 'ADAPTER_FOREIGN_ATTEMPTS', name: 'hci1', count: 1 });
      p.pool.send({ type: 'ADAPTER_FOREIGN_ATTEMPTS', name: 'hci1', count: 0 });
      expect(p.ctx().index.queue).toHaveLength(waiting);
      return PersistentTable.work.nodes - before;
    };
    const small = workFor(40);
    const large = workFor(400);
    expect(small).toBeGreaterThan(0);
    expect(large).toBeLessThan(2 * small);
  });

  it('with startsPerTurn 4, ten devices asked for at once start four per turn, oldest first', () => {
    vi.useFakeTimers();
    const p = fakePool({ slotsPerAdapter: 10, startsPerTurn: 4 });
    for (let i = 1; i <= 10; i += 1) p.admit(D(i));
    const connecting = () =>
      [...Array(10).keys()].filter((i) => p.status(D(i + 1)) === 'connecting').map((i) => i + 1);
    expect(connecting()).toEqual([1, 2, 3, 4]);
    expect(p.ctx().index.queue).toEqual([5, 6, 7, 8, 9, 10].map(D));
    vi.advanceTimersToNextTimer();
    expect(connecting()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    vi.advanceTimersToNextTimer();
    expect(connecting()).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // The last turn's timer ends it; nothing is left scheduled afterwards.
    vi.runAllTimers();
    expect(vi.getTimerCount()).toBe(0);
    expect(p.ctx().startedThisTurn).toBe(0);
  });
});
