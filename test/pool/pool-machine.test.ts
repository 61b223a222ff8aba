/**
 * The adapter pool machine with scripted children (no D-Bus): slot accounting, queue, rotation,
 * requeue, adapters coming and going, bluetoothd restarts, crashing children.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { slotReport } from '../../src/machines/adapter-pool-steps.js';
import { chooseAdapter, emptyPoolTables, type PoolView } from '../../src/machines/adapter-pool-logic.js';
import { PersistentTable } from '../../src/machines/persistent-table.js';
import { startFakePool } from './fake-child.js';

const D = (n: number) => `AA:00:00:00:00:0${n}`;
let pools: Array<ReturnType<typeof startFakePool>> = [];
function fakePool(...args: Parameters<typeof startFakePool>) {
  const p = startFakePool(...args);
  pools.push(p);
  return p;
}
afterEach(() => {
  for (const p of pools) p.stop();
  pools = [];
});

function perAdapter(p: ReturnType<typeof startFakePool>) {
  const { inUse, queued } = slotReport(p.ctx());
  return { hci0: inUse.hci0 ?? [], hci1: inUse.hci1 ?? [], queued };
}

describe('slot accounting and queue', () => {
  it('2 adapters × 2 slots and 6 devices: round-robin fills both, two wait, a freed slot goes to the oldest waiting device', () => {
    const p = fakePool();
    for (let i = 1; i <= 6; i += 1) p.admit(D(i));
    expect(perAdapter(p)).toEqual({
      hci0: [D(1), D(3)],
      hci1: [D(2), D(4)],
      queued: [D(5), D(6)],
    });
    // Queued devices have an idle child (the caller can watch it) that was never told to connect.
    expect(p.child(D(5)).getSnapshot().value).toBe('idle');

    for (let i = 1; i <= 4; i += 1) p.child(D(i)).send({ type: 'TEST_CONNECTED' });
    expect([1, 2, 3, 4].map((i) => p.status(D(i)))).toEqual([
      'connected',
      'connected',
      'connected',
      'connected',
    ]);

    // D1 loses its link (Connected=false): its hci0 slot goes to D5; D1 (keep-alive) waits behind D6.
    p.child(D(1)).send({ type: 'TEST_LINK_LOST' });
    expect(perAdapter(p)).toEqual({ hci0: [D(3), D(5)], hci1: [D(2), D(4)], queued: [D(6), D(1)] });
    expect(p.child(D(5)).getSnapshot().value).toBe('connecting');
    expect(p.child(D(5)).getSnapshot().context.adapter).toBe('hci0');
  });

  it('a requested disconnect frees the slot and removes the device once its child is idle', () => {
    const p = fakePool({ slotsPerAdapter: 1, adapters: [{ name: 'hci0', powered: true }] });
    p.admit(D(1), { hci0: -50 });
    p.admit(D(2), { hci0: -50 });
    p.child(D(1)).send({ type: 'TEST_CONNECTED' });
    expect(perAdapter(p).queued).toEqual([D(2)]);
    p.pool.send({ type: 'DISCONNECT_DEVICE', address: D(1) });
    expect(p.ctx().devices.get(D(1))).toBeUndefined();
    expect(p.emitted).toContainEqual({ type: 'device-removed', address: D(1) });
    expect(perAdapter(p).hci0).toEqual([D(2)]);
  });
});

describe('adapter choice', () => {
  it('never assigns an adapter that does not see the device, even with free slots there', () => {
    const p = fakePool({ slotsPerAdapter: 1 });
    p.admit(D(1), { hci0: -50 });
    p.admit(D(2), { hci0: -50 });
    expect(p.adapterOf(D(1))).toBe('hci0');
    expect(p.status(D(2))).toBe('queued');
    expect(perAdapter(p).hci1).toEqual([]);
  });

  it("another service's links occupy slots: a device only the full adapter hears waits, another goes elsewhere, and a link that goes frees the slot; our own links are not counted twice", () => {
    const p = fakePool();
    const [F1, F2] = ['BB:00:00:00:00:01', 'BB:00:00:00:00:02'];
    p.pool.send({ type: 'ADAPTER_LINKS', name: 'hci0', connected: [F1, F2] });
    p.admit(D(1), { hci0: -50 });
    p.admit(D(2));
    expect(p.status(D(1))).toBe('queued');
    expect(p.child(D(1)).getSnapshot().value).toBe('idle');
    expect(p.adapterOf(D(2))).toBe('hci1');

    // Our own link shows up in BlueZ too: still one slot on hci1, one left for D3.
    p.child(D(2)).send({ type: 'TEST_CONNECTED' });
    p.pool.send({ type: 'ADAPTER_LINKS', name: 'hci1', connected: [D(2)] });
    p.admit(D(3), { hci1: -50 });
    expect(p.adapterOf(D(3))).toBe('hci1');

    // The other service lets F1 go: D1 gets the slot.
    p.pool.send({ type: 'ADAPTER_LINKS', name: 'hci0', connected: [F2] });
    expect(p.status(D(1))).toBe('connecting');
    expect(p.adapterOf(D(1))).toBe('hci0');
    expect(p.child(D(1)).getSnapshot().value).toBe('connecting');
  });

  it('score: free slots first, then recent failures, then RSSI on that adapter', () => {
    const view: PoolView = {
      adapters: {
        hci0: {
          name: 'hci0',
          present: true,
          powered: true,
          learnedLimit: null,
          suspectedLimit: null,
          recentFailures: 0,
        },
        hci1: {
          name: 'hci1',
          present: true,
          powered: true,
          learnedLimit: null,
          suspectedLimit: null,
          recentFailures: 0,
        },
      },
      ...emptyPoolTables(),
      sightings: PersistentTable.from([[D(1), { hci0: -80, hci1: -50 }]]),
      links: {},
      slotsPerAdapter: 5,
      strategy: 'score',
      lastChosen: null,
      bluezUp: true,
    };
    expect(chooseAdapter(view, D(1))).toBe('hci1');
    const failing = {
      ...view,
      adapters: { ...view.adapters, hci1: { ...view.adapters.hci1!, recentFailures: 3 } },
    };
    expect(chooseAdapter(failing, D(1))).toBe('hci0');
    // A device no adapter has seen yet may go anywhere (the child discovers it there).
    expect(chooseAdapter({ ...view, sightings: PersistentTable.empty() }, D(2))).toBe('hci0');
  });
});

describe('rotation', () => {
  it('a refused link while the adapter holds links rotates to the other adapter that sees the device and lowers the limit', () => {
    const p = fakePool({ slotsPerAdapter: 5, strategy: 'score' });
    p.admit(D(1), { hci0: -40 });
    p.child(D(1)).send({ type: 'TEST_CONNECTED' });
    p.pool.send({ type: 'ADAPTER_LINKS', name: 'hci0', connected: [D(1)] });
    p.admit(D(2), { hci0: -30, hci1: -95 });
    expect(p.adapterOf(D(2))).toBe('hci0');

    // One abort could be radio trouble: nothing learned yet. The same refusal at the same real link
    // count again: the controller holds 1.
    p.child(D(2)).send({ type: 'TEST_FAIL', failureClass: 'aborted', rotate: false });
    p.child(D(2)).send({ type: 'TEST_RETRY' });
    expect(p.emitted.filter((e) => e.type === 'slot-limit-learned')).toEqual([]);
    p.child(D(2)).send({ type: 'TEST_FAIL', failureClass: 'aborted', rotate: true });
    expect(p.emitted).toContainEqual({ type: 'slot-limit-learned', adapter: 'hci0', limit: 1 });
    expect(p.adapterOf(D(2))).toBe('hci1');
    p.child(D(2)).send({ type: 'TEST_RETRY' });
    expect(p.child(D(2)).getSnapshot().context.adapter).toBe('hci1');

    // A device only hci0 sees now waits for hci0 instead of going to the blind hci1.
    p.admit(D(3), { hci0: -40 });
    expect(p.status(D(3))).toBe('queued');
    p.pool.send({ type: 'DISCONNECT_DEVICE', address: D(1) });
    p.pool.send({ type: 'ADAPTER_LINKS', name: 'hci0', connected: [] });
    expect(p.adapterOf(D(3))).toBe('hci0');
  });

  it('with no other adapter, the device waits in the queue, its one child parked in waiting-for-slot, instead of burning attempts', () => {
    const p = fakePool({ slotsPerAdapter: 5, adapters: [{ name: 'hci0', powered: true }] });
    p.admit(D(1), { hci0: -40 });
    p.child(D(1)).send({ type: 'TEST_CONNECTED' });
    p.pool.send({ type: 'ADAPTER_LINKS', name: 'hci0', connected: [D(1)] });
    p.admit(D(2), { hci0: -40 });
    const onlyChild = p.child(D(2));
    onlyChild.send({ type: 'TEST_FAIL', failureClass: 'outOfSlots', rotate: true });
    expect(onlyChild.getSnapshot().status).toBe('active');
    expect(onlyChild.getSnapshot().value).toBe('waiting-for-slot');
    expect(p.status(D(2))).toBe('queued');
    expect(p.ctx().devices.get(D(2))?.childId).toBe(`device:${D(2)}#1`);
    expect(p.emitted).toContainEqual(expect.objectContaining({ type: 'device-requeued', address: D(2) }));

    // As at run time: the mirror shows Connected=false before the child's link watch reports it.
    p.pool.send({ type: 'ADAPTER_LINKS', name: 'hci0', connected: [] });
    p.child(D(1)).send({ type: 'TEST_LINK_LOST' });
    // D1 (keep-alive) queued behind D2: D2 takes the freed slot, with the same actor.
    expect(p.status(D(2))).toBe('connecting');
    expect(p.child(D(2))).toBe(onlyChild);
    expect(onlyChild.getSnapshot().value).toBe('connecting');
    expect(onlyChild.getSnapshot().context.adapter).toBe('hci0');
    expect(p.status(D(1))).toBe('queued');
  });

  it('a device waiting for a slot can be disconnected: its parked child is stopped and the device leaves', () => {
    const p = fakePool({ slotsPerAdapter: 2, adapters: [{ name: 'hci0', powered: true }] });
    p.admit(D(2), { hci0: -40 });
    p.child(D(2)).send({ type: 'TEST_CONNECTED' });
    p.pool.send({ type: 'ADAPTER_LINKS', name: 'hci0', connected: [D(2)] });
    p.admit(D(1), { hci0: -40 });
    p.child(D(1)).send({ type: 'TEST_FAIL', failureClass: 'outOfSlots', rotate: true });
    const parked = p.child(D(1));
    expect(parked.getSnapshot().value).toBe('waiting-for-slot');
    // A parked device holds no slot.
    expect(perAdapter(p)).toEqual({ hci0: [D(2)], hci1: [], queued: [D(1)] });
    p.pool.send({ type: 'DISCONNECT_DEVICE', address: D(1) });
    expect(p.ctx().devices.get(D(1))).toBeUndefined();
    expect(parked.getSnapshot().status).toBe('stopped');
  });

  it('a limit is learned from real links only: devices still connecting are no links, and an abort with no real link teaches nothing', () => {
    const p = fakePool({ slotsPerAdapter: 7, adapters: [{ name: 'hci0', powered: true }] });
    p.admit(D(1), { hci0: -40 });
    p.child(D(1)).send({ type: 'TEST_CONNECTED' });
    p.pool.send({ type: 'ADAPTER_LINKS', name: 'hci0', connected: [D(1)] });
    // D2 and D3 hold reservations (connecting), but the controller has 1 link.
    p.admit(D(2), { hci0: -40 });
    p.admit(D(3), { hci0: -40 });
    p.admit(D(4), { hci0: -40 });
    for (const d of [D(2), D(3)]) {
      p.child(d).send({ type: 'TEST_FAIL', failureClass: 'aborted', rotate: false });
      p.child(d).send({ type: 'TEST_RETRY' });
    }
    expect(p.emitted).toContainEqual({ type: 'slot-limit-learned', adapter: 'hci0', limit: 1 });
    expect(p.ctx().adapters['hci0']?.learnedLimit).toBe(1);

    const q = fakePool({ slotsPerAdapter: 7, adapters: [{ name: 'hci0', powered: true }] });
    q.admit(D(1), { hci0: -40 });
    q.admit(D(2), { hci0: -40 });
    for (let i = 0; i < 2; i += 1) {
      q.child(D(2)).send({ type: 'TEST_FAIL', failureClass: 'aborted', rotate: false });
      q.child(D(2)).send({ type: 'TEST_RETRY' });
    }
    expect(q.ctx().adapters['hci0']?.learnedLimit).toBe(null);
  });

  it('the link count carried on the error wins over the pool view; a success at a suspected count clears the suspicion', () => {
    const p = fakePool({ slotsPerAdapter: 7, adapters: [{ name: 'hci0', powered: true }] });
    p.admit(D(1), { hci0: -40 });
    p.admit(D(2), { hci0: -40 });
    p.child(D(1)).send({ type: 'TEST_FAIL', failureClass: 'aborted', rotate: false, linksOnAdapter: 3 });
    expect(p.ctx().adapters['hci0']).toMatchObject({ learnedLimit: null, suspectedLimit: 3 });
    // Another device links up while 3 others are there: 3 is no limit.
    p.pool.send({ type: 'ADAPTER_LINKS', name: 'hci0', connected: [D(7), D(8), D(9)] });
    p.child(D(2)).send({ type: 'TEST_CONNECTED' });
    expect(p.ctx().adapters['hci0']).toMatchObject({ learnedLimit: null, suspectedLimit: null });
    // So the next abort at 3 is a new suspicion, not a confirmation.
    p.child(D(1)).send({ type: 'TEST_RETRY' });
    p.child(D(1)).send({ type: 'TEST_FAIL', failureClass: 'aborted', rotate: false, linksOnAdapter: 3 });
    expect(p.ctx().adapters['hci0']).toMatchObject({ learnedLimit: null, suspectedLimit: 3 });
    expect(p.emitted.filter((e) => e.type === 'slot-limit-learned')).toEqual([]);
  });

  it('a learned limit is re-probed after limitReprobeMs, and dropped at once when the controller holds more links than it', () => {
    vi.useFakeTimers();
    try {
      const p = fakePool({
        slotsPerAdapter: 5,
        adapters: [{ name: 'hci0', powered: true }],
        limitReprobeMs: 60_000,
      });
      p.admit(D(1), { hci0: -40 });
      p.child(D(1)).send({ type: 'TEST_FAIL', failureClass: 'outOfSlots', rotate: false, linksOnAdapter: 2 });
      expect(p.ctx().adapters['hci0']?.learnedLimit).toBe(2);
      vi.advanceTimersByTime(59_000);
      expect(p.ctx().adapters['hci0']?.learnedLimit).toBe(2);
      vi.advanceTimersByTime(2_000);
      expect(p.ctx().adapters['hci0']?.learnedLimit).toBe(null);
      expect(p.emitted).toContainEqual(
        expect.objectContaining({ type: 'slot-limit-forgotten', adapter: 'hci0' }),
      );

      p.child(D(1)).send({ type: 'TEST_RETRY' });
      p.child(D(1)).send({ type: 'TEST_FAIL', failureClass: 'outOfSlots', rotate: false, linksOnAdapter: 2 });
      expect(p.ctx().adapters['hci0']?.learnedLimit).toBe(2);
      p.pool.send({ type: 'ADAPTER_LINKS', name: 'hci0', connected: [D(7), D(8), D(9)] });
      expect(p.ctx().adapters['hci0']?.learnedLimit).toBe(null);
      p.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a rotation request that is not about slots and has no alternative leaves the child retrying where it is', () => {
    const p = fakePool({ adapters: [{ name: 'hci0', powered: true }] });
    p.admit(D(1), { hci0: -40 });
    p.child(D(1)).send({ type: 'TEST_FAIL', failureClass: 'noReply', rotate: true });
    expect(p.status(D(1))).toBe('connecting');
    expect(p.adapterOf(D(1))).toBe('hci0');
  });
});

describe('adapters and bluetoothd coming and going', () => {
  it('a child running the recovery ladder is left alone when bluetoothd goes away or its adapter disappears or powers off; when the ladder ends the pool moves it only if its adapter is still unusable', () => {
    const p = fakePool({ slotsPerAdapter: 5 });
    p.admit(D(1), { hci0: -40 }); // only hci0 hears it
    p.admit(D(2)); // both (round-robin: hci1)
    p.admit(D(3), { hci0: -40 }); // only hci0, an ordinary attempt
    expect([1, 2, 3].map((i) => p.adapterOf(D(i)))).toEqual(['hci0', 'hci1', 'hci0']);
    const reset = (address: string) => {
      p.child(address).send({ type: 'TEST_FAIL', failureClass: 'noReply', rotate: false });
      p.child(address).send({ type: 'TEST_RESET' });
      expect(p.child(address).getSnapshot().value).toBe('resetting');
    };
    reset(D(1));
    reset(D(2));

    // The ladder restarts bluetoothd: the resetting children keep running it, the other one waits.
    p.pool.send({ type: 'BLUEZ_DOWN' });
    expect(p.child(D(1)).getSnapshot().value).toBe('resetting');
    expect(p.child(D(2)).getSnapshot().value).toBe('resetting');
    expect(p.child(D(3)).getSnapshot().value).toBe('waiting-for-slot');
    expect(p.emitted.filter((e) => e.type === 'device-requeued').map((e) => e.address)).toEqual([D(3)]);
    p.pool.send({ type: 'BLUEZ_UP' });
    p.pool.send({ type: 'ADAPTER_PRESENT', name: 'hci0', powered: true });

    // D1's ladder ends with hci0 back: it simply goes on there.
    p.child(D(1)).send({ type: 'TEST_RESET_DONE' });
    expect(p.child(D(1)).getSnapshot().value).toBe('backoff');
    expect([p.status(D(1)), p.adapterOf(D(1))]).toEqual(['connecting', 'hci0']);

    // hci1 never came back (a USB re-authorize that lost it): D2 leaves for hci0 when its ladder ends.
    p.pool.send({ type: 'ADAPTER_GONE', name: 'hci1' });
    expect(p.child(D(2)).getSnapshot().value).toBe('resetting');
    p.child(D(2)).send({ type: 'TEST_RESET_DONE' });
    expect(p.adapterOf(D(2))).toBe('hci0');
    expect(p.child(D(2)).getSnapshot().context.assignedAdapter).toBe('hci0');
    expect(p.emitted).toContainEqual({
      type: 'device-rotated',
      address: D(2),
      from: 'hci1',
      to: 'hci0',
      failureClass: null,
    });

    // A ladder powering hci0 off is left alone too; one that ends with it still off parks the child.
    reset(D(1));
    p.pool.send({ type: 'ADAPTER_PRESENT', name: 'hci0', powered: false });
    expect(p.child(D(1)).getSnapshot().value).toBe('resetting');
    p.child(D(1)).send({ type: 'TEST_RESET_DONE' });
    expect(p.child(D(1)).getSnapshot().value).toBe('waiting-for-slot');
    expect(p.status(D(1))).toBe('queued');
    p.pool.send({ type: 'ADAPTER_PRESENT', name: 'hci0', powered: true });
    expect([p.status(D(1)), p.adapterOf(D(1))]).toEqual(['connecting', 'hci0']);
  });

  it('an adapter removed mid-connection sends its connecting children elsewhere; a new adapter is used at once', () => {
    const p = fakePool({ slotsPerAdapter: 1 });
    p.admit(D(1));
    p.admit(D(2));
    p.admit(D(3));
    expect(perAdapter(p)).toEqual({ hci0: [D(1)], hci1: [D(2)], queued: [D(3)] });

    const d1 = p.child(D(1));
    p.pool.send({ type: 'ADAPTER_GONE', name: 'hci0' });
    // hci1 is full: D1 waits, its child parked.
    expect(p.status(D(1))).toBe('queued');
    expect(p.child(D(1))).toBe(d1);
    expect(d1.getSnapshot().value).toBe('waiting-for-slot');

    p.pool.send({ type: 'SIGHTINGS', address: D(1), sightings: { hci1: -60, hci2: -60 } });
    p.pool.send({ type: 'SIGHTINGS', address: D(3), sightings: { hci1: -60, hci2: -60 } });
    p.pool.send({ type: 'ADAPTER_PRESENT', name: 'hci2', powered: true });
    // The oldest waiting device gets the new adapter straight away.
    expect(p.adapterOf(D(3))).toBe('hci2');
    expect(p.status(D(1))).toBe('queued');
  });

  it('bluetoothd restart: connecting children wait, connected ones re-queue on link loss, all are dispatched when it is back', () => {
    const p = fakePool({ slotsPerAdapter: 5 });
    for (let i = 1; i <= 3; i += 1) p.admit(D(i));
    p.child(D(1)).send({ type: 'TEST_CONNECTED' });
    p.child(D(2)).send({ type: 'TEST_CONNECTED' });

    p.pool.send({ type: 'BLUEZ_DOWN' });
    // D3 was connecting: its child parks (the fake tears down at once) and waits in the queue.
    expect(p.status(D(3))).toBe('queued');
    expect(p.ctx().devices.get(D(3))?.childId).toBe(`device:${D(3)}#1`);
    expect(p.child(D(3)).getSnapshot().value).toBe('waiting-for-slot');
    p.child(D(1)).send({ type: 'TEST_LINK_LOST' });
    p.child(D(2)).send({ type: 'TEST_LINK_LOST' });
    expect([1, 2, 3].map((i) => p.status(D(i)))).toEqual(['queued', 'queued', 'queued']);

    p.pool.send({ type: 'BLUEZ_UP' });
    expect(perAdapter(p).queued).toHaveLength(3); // no adapters yet
    p.pool.send({ type: 'ADAPTER_PRESENT', name: 'hci0', powered: true });
    p.pool.send({ type: 'ADAPTER_PRESENT', name: 'hci1', powered: true });
    expect([1, 2, 3].map((i) => p.status(D(i)))).toEqual(['connecting', 'connecting', 'connecting']);
    expect([1, 2, 3].map((i) => p.child(D(i)).getSnapshot().value)).toEqual([
      'connecting',
      'connecting',
      'connecting',
    ]);
  });

  it('a child that crashes is reported failed and the pool keeps running', () => {
    const p = fakePool();
    p.admit(D(1));
    p.admit(D(2));
    p.child(D(1)).send({ type: 'TEST_CRASH' });
    expect(p.pool.getSnapshot().status).toBe('active');
    expect(p.status(D(1))).toBe('failed');
    expect(p.ctx().devices.get(D(1))?.error).toMatch(/crashed: boom/);
    p.child(D(2)).send({ type: 'TEST_CONNECTED' });
    expect(p.status(D(2))).toBe('connected');
  });
});
