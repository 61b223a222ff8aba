/**
 * A dead device in a full pool, on the simulator: while it waits out a backoff it holds no slot
 * (it is parked), so the live devices are not delayed by it, and it still gives up after
 * maxAttempts. The comparison is by construction (the order of the pool's own events in one run),
 * never by how fast this machine is.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionFailedError } from '../../src/bluez/errors.js';
import type { PoolEmitted } from '../../src/machines/adapter-pool-steps.js';
import { eventually, peripheral, startPoolWorld, type PoolWorld } from './sim-harness.js';

const DEAD = 'DE:AD:00:00:00:01';
const L = (n: number) => `AA:BB:CC:00:00:1${n}`;
/** L1 holds its link on hci0 for the whole run; the others connect, read and leave (a session). */
const HELD = L(1);
const LIVE = [1, 2, 3, 4, 5].map(L);
const MAX_ATTEMPTS = 3;
/** The dead device's backoff between attempts (class `other`: Input/output error). */
const BACKOFF_MS = 1500;

let worlds: PoolWorld[] = [];
afterEach(async () => {
  for (const w of worlds) await w.stop();
  worlds = [];
});

/**
 * 2 adapters × 2 slots. L1 and L5 are heard on hci0 only, L2–L4 on both, the dead device on hci0
 * only: L5 can only have the slot the dead device takes. Every live device but L1 is disconnected
 * as soon as it is connected, so all five are served with four slots.
 */
async function run(
  withDead: boolean,
): Promise<{ events: PoolEmitted[]; w: PoolWorld; dead?: Promise<unknown> }> {
  const devices = [
    peripheral(L(1), { knownOn: ['hci0'] }),
    peripheral(L(2)),
    peripheral(L(3)),
    peripheral(L(4)),
    peripheral(L(5), { knownOn: ['hci0'] }),
    ...(withDead ? [peripheral(DEAD, { knownOn: ['hci0'] })] : []),
  ];
  const w = await startPoolWorld(
    {
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices,
      faults: withDead
        ? [
            {
              kind: 'fail-connect',
              target: { device: DEAD },
              count: 1000,
              errorName: 'org.bluez.Error.Failed',
              message: 'Input/output error',
            },
          ]
        : [],
    },
    { slotsPerAdapter: 2, defaults: { backoffMs: { other: BACKOFF_MS } } },
  );
  worlds.push(w);
  const events: PoolEmitted[] = [];
  w.pool.actor.on('*', (e) => {
    events.push(e);
    if (e.type === 'device-connected' && e.address !== HELD) void w.pool.disconnect(e.address);
  });
  let dead: Promise<unknown> | undefined;
  if (withDead) {
    // Admitted first: it takes the first slot on hci0. Plain retries only (no cache clearing,
    // rotation or reset), so every attempt is one failed Connect.
    dead = w.pool
      .connected(DEAD, {
        maxAttempts: MAX_ATTEMPTS,
        escalation: { diagnose: false, clear: false, rotate: false, reset: false },
      })
      .then(
        () => new Error('the dead device connected'),
        (err: unknown) => err,
      );
  }
  for (const address of LIVE) w.pool.connect(address);
  await eventually('all five live devices connected once', () =>
    LIVE.every((a) => events.some((e) => e.type === 'device-connected' && e.address === a)),
  );
  return { events, w, dead };
}

const index = (events: PoolEmitted[], match: (e: PoolEmitted) => boolean, nth = 0): number => {
  let seen = -1;
  for (let i = 0; i < events.length; i += 1) {
    const e = events[i];
    if (e !== undefined && match(e)) {
      seen += 1;
      if (seen === nth) return i;
    }
  }
  return -1;
};
const assigned = (address: string) => (e: PoolEmitted) =>
  e.type === 'device-assigned' && e.address === address;

describe('a dead device in a full pool (simulator)', () => {
  it('2 adapters × 2 slots, 6 devices, one dead: the five live ones are all served within its first backoff, as without it, and it fails after maxAttempts', async () => {
    // Without the dead device: all five connect, none waits for a backoff.
    const without = await run(false);
    expect(without.events.filter((e) => e.type === 'device-failed')).toEqual([]);
    expect(without.events.filter((e) => e.type === 'device-parked')).toEqual([]);

    const withDead = await run(true);
    const { events, w } = withDead;
    // Its first attempt held the hci0 slot L5 needs; the failure parked it and L5 got the slot.
    const firstPark = index(events, (e) => e.type === 'device-parked' && e.address === DEAD);
    expect(firstPark).toBeGreaterThanOrEqual(0);
    expect(index(events, assigned(L(5)))).toBeGreaterThan(firstPark);

    const err = await withDead.dead;
    expect(err).toBeInstanceOf(ConnectionFailedError);
    expect((err as ConnectionFailedError).attempts).toHaveLength(MAX_ATTEMPTS);
    // One Connect per attempt, no more: the dead device never retried without a slot.
    const deadPath = `/org/bluez/hci0/dev_${DEAD.replaceAll(':', '_')}`;
    expect(w.env.sim.calls.filter((c) => c.path === deadPath && c.member === 'Connect')).toHaveLength(
      MAX_ATTEMPTS,
    );
    // Its second attempt was assigned only after every live device had been (its wait ended in the
    // queue behind them): the live ones were served within one backoff of the dead device, ...
    const secondAttempt = index(events, assigned(DEAD), 1);
    expect(secondAttempt).toBeGreaterThanOrEqual(0);
    for (const address of LIVE) expect(index(events, assigned(address))).toBeLessThan(secondAttempt);
    // ... and L5, which could only have the dead device's hci0 slot, was connected before it.
    expect(index(events, (e) => e.type === 'device-connected' && e.address === L(5))).toBeLessThan(
      secondAttempt,
    );
    // It gave up after maxAttempts, parked between attempts: one park per backoff.
    expect(events.filter((e) => e.type === 'device-parked' && e.address === DEAD)).toHaveLength(
      MAX_ATTEMPTS - 1,
    );
    expect(events.filter((e) => e.type === 'device-failed').map((e) => e.address)).toEqual([DEAD]);
    // The sessions ended: only the held link and the failed device are left in the pool.
    await eventually('sessions over', () => w.pool.snapshot().devices.length === 2);
    expect(
      w.pool
        .snapshot()
        .devices.map((d) => [d.address, d.status])
        .sort(),
    ).toEqual(
      [
        [L(1), 'connected'],
        [DEAD, 'failed'],
      ].sort(),
    );
  }, 60_000);
});
