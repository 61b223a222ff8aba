/**
 * The ladder's D-Bus steps against the BlueZ simulator through the real BluezClient port.
 */
import { afterEach, expect, it } from 'vitest';
import { ResetLadder, type LadderLogEntry } from '../../src/actors/reset-ladder.js';
import { ladderBluezPort } from '../../src/actors/reset-ladder-ports.js';
import { eventually, peripheral, startPoolWorld, type PoolWorld } from '../pool/sim-harness.js';

let world: PoolWorld | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

it('a power cycle on the simulator names the links it drops, drops them, and leaves the adapter powered', async () => {
  const dev = 'AA:BB:CC:00:00:01';
  world = await startPoolWorld({
    adapters: [{ name: 'hci0' }, { name: 'hci1' }],
    devices: [peripheral(dev)],
  });
  const w = world;
  // keepAlive off: the pool must not reconnect behind the ladder's back in this test.
  expect((await w.pool.connected(dev, { keepAlive: false })).adapter).toBe('hci0');
  const logs: LadderLogEntry[] = [];
  const ladder = new ResetLadder({
    bluez: ladderBluezPort(w.bluez),
    log: (e) => logs.push(e),
    settleMs: 50,
    offSettleMs: 50,
    stepTimeoutMs: 5000,
  });
  const report = await ladder.run('hci0');
  expect(report.steps.map((s) => [s.step, s.result])).toEqual([
    ['stopDiscovery', 'ok'],
    ['powerCycle', 'ok'],
  ]);
  expect(report.recovered).toBe(true);
  expect(logs.find((e) => e.drops !== undefined)?.message).toBe(
    `powerCycle on hci0 will drop connections: ${dev}@hci0`,
  );
  const hci0 = w.env.sim.state().adapters.find((a) => a.name === 'hci0');
  expect(hci0?.powered).toBe(true);
  expect(hci0?.devices.find((d) => d.address === dev)?.connected).toBe(false);
  await eventually('the pool saw the link go', () => w.pool.snapshot().devices.length === 0);
  // A second run within 30 s is refused by the cooldown: the link-dropping step does not repeat.
  expect((await ladder.run('hci0')).steps[1]).toMatchObject({ step: 'powerCycle', result: 'cooldown' });
});
