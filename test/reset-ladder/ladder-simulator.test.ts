/**
 * The ladder's D-Bus steps against the BlueZ simulator through the real BluezClient port, and the
 * ladder as a pooled connection actor's `resetting` state.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import type { AnyActorRef } from 'xstate';
import { ResetLadder, type LadderLogEntry } from '../../src/actors/reset-ladder.js';
import { ladderBluezPort } from '../../src/actors/reset-ladder-ports.js';
import type { PoolEmitted } from '../../src/machines/adapter-pool-steps.js';
import type { ConnectionContext } from '../../src/machines/connection-contracts.js';
import { topLevelState } from '../../src/machines/state-trail.js';
import { eventually, peripheral, startPoolWorld, type PoolWorld } from '../pool/sim-harness.js';

const HANDSHAKE_RESTART = fileURLToPath(new URL('./fake-restart-handshake.mjs', import.meta.url));

let world: PoolWorld | undefined;
let tempDir: string | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
  if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true });
  tempDir = undefined;
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

it('a pooled device whose ladder restarts bluetoothd keeps running the ladder through the restart (the pool does not park it), and connects on the same actor once org.bluez is back', async () => {
  const dev = 'AA:BB:CC:00:00:01';
  tempDir = await mkdtemp(join(tmpdir(), 'bcm-restart-'));
  const dir = tempDir;
  world = await startPoolWorld(
    {
      adapters: [{ name: 'hci0' }],
      devices: [peripheral(dev, { knownOn: ['hci0'], inRange: ['hci0'] })],
      // One failed attempt is enough to escalate to a reset below.
      faults: [
        {
          kind: 'fail-connect',
          target: { device: dev },
          count: 1,
          errorName: 'org.bluez.Error.Failed',
          message: 'Input/output error',
        },
      ],
    },
    {
      resetLadder: {
        steps: { stopDiscovery: false, powerCycle: false, restartBluetoothd: true },
        restartCommand: [process.execPath, HANDSHAKE_RESTART, dir],
        settleMs: 20,
        stepTimeoutMs: 15_000,
        returnTimeoutMs: 10_000,
      },
      defaults: { escalation: { reset: true, resetAfter: 1, resetCooldownMs: 0 } },
    },
  );
  const w = world;
  const events: PoolEmitted[] = [];
  w.pool.actor.on('*', (e) => events.push(e as PoolEmitted));
  let poolSawBluezDown = false;
  const poolWatch = w.pool.actor.subscribe((s) => {
    if (!s.context.bluezUp) poolSawBluezDown = true;
  });
  const states: string[] = [];
  const child: AnyActorRef = w.pool.connect(dev);
  child.subscribe((s) => {
    const state = topLevelState((s as { value: Parameters<typeof topLevelState>[0] }).value);
    if (states[states.length - 1] !== state) states.push(state);
  });
  const firstBus = w.env.sim.state().busName;

  // The ladder runs the restart command; the test is the init system: it restarts bluetoothd.
  await eventually('the restart command ran', () => existsSync(join(dir, 'requested')));
  expect(topLevelState(child.getSnapshot().value)).toBe('resetting');
  await w.env.sim.restartDaemon({ downMs: 300 });
  await eventually(
    'bluetoothd replaced',
    () => w.env.sim.state().busName !== firstBus && w.env.sim.state().daemonRunning,
  );
  await eventually(
    'the pool saw bluetoothd go and come back',
    () => poolSawBluezDown && w.pool.snapshot().bluezUp,
  );
  await writeFile(join(dir, 'done'), '');

  await eventually('connected again', () =>
    w.pool.snapshot().devices.some((d) => d.address === dev && d.status === 'connected'),
  );
  poolWatch.unsubscribe();
  // One actor throughout; the ladder finished (recovered), then the next attempt connected.
  expect(w.pool.child(dev)).toBe(child);
  const after = states.slice(states.indexOf('resetting'));
  expect(after.slice(0, 2)).toEqual(['resetting', 'backoff']);
  // Not requeued (no QUEUED_FOR_SLOT, below): `waiting-for-slot` only where a pooled backoff ends
  // (the parked child asks the pool for its slot again, attempts kept).
  states.forEach((state, i) => {
    if (state === 'waiting-for-slot') expect(states[i - 1]).toBe('backoff');
  });
  expect(events.filter((e) => e.type === 'device-requeued')).toEqual([]);
  const attempts = (child.getSnapshot().context as ConnectionContext).attempts;
  expect(attempts.map((a) => [a.outcome, a.escalation])).toEqual([
    ['failed', 'reset'],
    ['connected', null],
  ]);
  expect(w.logs).toContainEqual(
    expect.stringMatching(
      /^info: restartBluetoothd on hci0: .* ran; org\.bluez is back and hci0 is powered$/,
    ),
  );
  expect(w.logs).toContain('info: hci0 recovered');
  expect(w.simLinks().hci0).toEqual([dev]);
});
