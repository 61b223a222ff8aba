/**
 * Connect admission (src/actors/connect-admission.ts): pending Device1.Connect calls per adapter
 * are bounded, granted in arrival order, and a cancelled waiter gives its place up. On the
 * simulator through the pool, and the gate itself.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectAdmission, connectAdmission } from '../../src/actors/connect-admission.js';
import { createAdapterPool } from '../../src/pool/create-adapter-pool.js';
import type { SimCall } from '../../src/testing/index.js';
import { peripheral, startPoolWorld, type PoolWorld } from './sim-harness.js';

let world: PoolWorld | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

const addr = (i: number): string => `AA:BB:CC:00:0A:${i.toString(16).padStart(2, '0').toUpperCase()}`;

/** The most Connect calls the simulator had pending at one time on `adapter`. */
function mostPendingConnects(calls: readonly SimCall[], adapter: string): number {
  const points: Array<[number, number]> = [];
  for (const c of calls) {
    if (c.member !== 'Connect' || !c.path.startsWith(`/org/bluez/${adapter}/`)) continue;
    points.push([c.at, 1], [c.repliedAt ?? Number.POSITIVE_INFINITY, -1]);
  }
  // A reply and a call at the same instant: the reply first (the slot was free again).
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, d] of points) most = Math.max(most, (now += d));
  return most;
}

describe('connect admission through the pool', () => {
  it('10 devices on one adapter, connectsPerAdapter 2: never more than 2 Connects pending at the simulator, all 10 connect, the gate ends empty', async () => {
    world = await startPoolWorld(
      {
        adapters: [{ name: 'hci0' }],
        devices: Array.from({ length: 10 }, (_, i) => peripheral(addr(i), { knownOn: ['hci0'] })),
        // Long enough Connects that a burst would overlap.
        faults: [{ kind: 'connect-latency', target: { adapter: 'hci0' }, ms: 80 }],
      },
      { slotsPerAdapter: 10, connectsPerAdapter: 2 },
    );
    const { pool, env, bluez } = world;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => pool.connected(addr(i), { signal: AbortSignal.timeout(60_000) })),
    );
    expect(results.map((r) => r.adapter)).toEqual(Array.from({ length: 10 }, () => 'hci0'));
    const connects = env.sim.calls.filter((c) => c.member === 'Connect');
    expect(connects).toHaveLength(10);
    expect(mostPendingConnects(env.sim.calls, 'hci0')).toBeLessThanOrEqual(2);
    expect(connectAdmission(bluez).size).toBe(0);
  }, 90_000);

  it('a waiter cancelled in the queue gives its place up: the next one goes when the first Connect ends, and the cancelled device never calls Connect', async () => {
    world = await startPoolWorld(
      {
        adapters: [{ name: 'hci0' }],
        devices: [0, 1, 2].map((i) => peripheral(addr(i), { knownOn: ['hci0'] })),
        faults: [{ kind: 'connect-latency', target: { adapter: 'hci0' }, ms: 600 }],
      },
      { slotsPerAdapter: 3, connectsPerAdapter: 1 },
    );
    const { pool, env, bluez } = world;
    const gate = connectAdmission(bluez);
    const first = pool.connected(addr(0), { signal: AbortSignal.timeout(60_000) });
    await eventuallyTrue(() => gate.admitted('hci0') === 1);
    const cancel = new AbortController();
    const second = pool.connected(addr(1), { signal: cancel.signal });
    const third = pool.connected(addr(2), { signal: AbortSignal.timeout(60_000) });
    await eventuallyTrue(() => gate.waiting('hci0') === 2);
    cancel.abort(new Error('the caller gave up'));
    await expect(second).rejects.toThrow('the caller gave up');
    await eventuallyTrue(() => gate.waiting('hci0') === 1);
    const [a, c] = await Promise.all([first, third]);
    expect([a.adapter, c.adapter]).toEqual(['hci0', 'hci0']);
    const connects = env.sim.calls.filter((x) => x.member === 'Connect').map((x) => x.path);
    expect(connects).toEqual([addr(0), addr(2)].map((m) => `/org/bluez/hci0/dev_${m.replace(/:/g, '_')}`));
    expect(gate.size).toBe(0);
  }, 90_000);

  it('connectsPerAdapter is checked before any I/O', () => {
    const bluez = { connect: () => undefined } as unknown as Parameters<typeof createAdapterPool>[0]['bluez'];
    expect(() => createAdapterPool({ bluez, connectsPerAdapter: 0 })).toThrow(RangeError);
    expect(() => createAdapterPool({ bluez, connectsPerAdapter: 1.5 })).toThrow(/connectsPerAdapter/);
    expect(() => createAdapterPool({ bluez, connectsPerAdapter: '2' as unknown as number })).toThrow(
      TypeError,
    );
  });
});

async function eventuallyTrue(check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('the admission gate', () => {
  it('grants in arrival order up to the limit; a release admits the next; release is idempotent', async () => {
    const gate = new ConnectAdmission(2);
    const order: string[] = [];
    const a = await gate.acquire('hci0');
    const b = await gate.acquire('hci0');
    const c = gate.acquire('hci0').then((r) => (order.push('c'), r));
    const d = gate.acquire('hci0').then((r) => (order.push('d'), r));
    // Another adapter has its own turn.
    const other = await gate.acquire('hci1');
    expect([gate.admitted('hci0'), gate.waiting('hci0'), gate.admitted('hci1')]).toEqual([2, 2, 1]);
    a();
    a();
    const releaseC = await c;
    expect(order).toEqual(['c']);
    expect([gate.admitted('hci0'), gate.waiting('hci0')]).toEqual([2, 1]);
    b();
    const releaseD = await d;
    expect(order).toEqual(['c', 'd']);
    releaseC();
    releaseD();
    other();
    expect(gate.size).toBe(0);
  });

  it('an aborted waiter leaves the queue at once and rejects with the reason; an aborted signal never enters', async () => {
    const gate = new ConnectAdmission(1);
    const held = await gate.acquire('hci0');
    const ctrl = new AbortController();
    const waiting = gate.acquire('hci0', ctrl.signal);
    const next = gate.acquire('hci0');
    expect(gate.waiting('hci0')).toBe(2);
    ctrl.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
    expect(gate.waiting('hci0')).toBe(1);
    await expect(gate.acquire('hci0', AbortSignal.abort(new Error('already')))).rejects.toThrow('already');
    expect(gate.waiting('hci0')).toBe(1);
    held();
    (await next)();
    expect(gate.size).toBe(0);
  });

  it('raising the limit admits waiters at once; bad limits are refused naming the field', async () => {
    const gate = new ConnectAdmission(1);
    const first = await gate.acquire('hci0');
    const second = gate.acquire('hci0');
    gate.setLimit(2);
    (await second)();
    first();
    expect(gate.size).toBe(0);
    expect(() => new ConnectAdmission(0)).toThrow(RangeError);
    expect(() => gate.setLimit(Number.NaN)).toThrow(/perAdapter/);
  });
});
