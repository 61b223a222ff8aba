/**
 * The watchdog machine alone, with scripted actors: silence makes a zombie no earlier than
 * timeoutMs, activity moves the deadline, a probe that answers prevents the zombie, a failing probe
 * declares it, data flowing again re-arms it, and without a timeout it does nothing at all.
 */
import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, fromPromise } from 'xstate';
import {
  watchdogMachine,
  type ActivityInput,
  type ProbeInput,
  type WatchdogEmitted,
  type WatchdogEvent,
} from '../../src/machines/watchdog.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function scripted(probe: (input: ProbeInput) => Promise<void> = async () => {}) {
  const listening: ActivityInput[] = [];
  let stopped = 0;
  const probes: ProbeInput[] = [];
  const machine = watchdogMachine.provide({
    actors: {
      listenForActivity: fromCallback<WatchdogEvent, ActivityInput>(({ input }) => {
        listening.push(input);
        return () => {
          stopped += 1;
        };
      }),
      probeCharacteristic: fromPromise<void, ProbeInput>(({ input }) => {
        probes.push(input);
        return probe(input);
      }),
    },
  });
  return { machine, listening, probes, stoppedListeners: () => stopped };
}

function start(
  machine: ReturnType<typeof scripted>['machine'],
  timeoutMs: number | null,
  probeUuid?: string,
) {
  const zombies: Array<WatchdogEmitted & { at: number }> = [];
  const startedAt = performance.now();
  const actor = createActor(machine, {
    input: {
      address: 'AA:BB:CC:DD:EE:01',
      adapter: 'hci1',
      timeoutMs,
      probe: probeUuid === undefined ? null : { uuid: probeUuid, timeoutMs: 100 },
    },
  });
  actor.on('zombie', (e) => zombies.push({ ...e, at: performance.now() }));
  actor.start();
  return { actor, zombies, startedAt };
}

describe('watchdog machine (scripted actors)', () => {
  it('without a timeout it stays off: no listener, no timer, no zombie', async () => {
    const s = scripted();
    const { actor, zombies } = start(s.machine, null);
    expect(actor.getSnapshot().value).toBe('off');
    await sleep(50);
    expect(s.listening).toEqual([]);
    expect(zombies).toEqual([]);
    actor.stop();
  });

  it('silence of timeoutMs declares one zombie on the adapter in use, not earlier; activity re-arms it', async () => {
    const s = scripted();
    const { actor, zombies, startedAt } = start(s.machine, 120);
    expect(s.listening).toEqual([{ address: 'AA:BB:CC:DD:EE:01', adapter: 'hci1' }]);
    // Activity at 60 ms moves the deadline to ≥ 180 ms after start.
    await sleep(60);
    const activityAt = performance.now();
    actor.send({ type: 'ACTIVITY' });
    await sleep(400);
    expect(zombies).toHaveLength(1);
    expect(zombies[0]).toMatchObject({ type: 'zombie', adapter: 'hci1', timeoutMs: 120, probed: false });
    expect(zombies[0]!.silenceMs).toBeGreaterThanOrEqual(120);
    expect(zombies[0]!.at - activityAt).toBeGreaterThanOrEqual(120);
    expect(zombies[0]!.at - startedAt).toBeGreaterThanOrEqual(180);
    expect(actor.getSnapshot().value).toEqual({ armed: 'silent' });
    // Reported once per silence, then data again re-arms it and a new silence is a second zombie.
    actor.send({ type: 'ACTIVITY' });
    expect(actor.getSnapshot().value).toEqual({ armed: 'watching' });
    await sleep(400);
    expect(zombies).toHaveLength(2);
    expect(actor.getSnapshot().context.zombies).toBe(2);
    actor.stop();
    expect(s.stoppedListeners()).toBe(1);
  });

  it('a probe that answers keeps the link: no zombie, the allowance starts again', async () => {
    const s = scripted();
    const { actor, zombies } = start(s.machine, 80, '00002a19-0000-1000-8000-00805f9b34fb');
    await sleep(400);
    expect(zombies).toEqual([]);
    expect(s.probes.length).toBeGreaterThanOrEqual(2);
    expect(s.probes[0]).toMatchObject({ adapter: 'hci1', uuid: '00002a19-0000-1000-8000-00805f9b34fb' });
    actor.stop();
  });

  it('a probe that fails declares the zombie with the probe error', async () => {
    const s = scripted(async () => {
      throw new Error('read timed out');
    });
    const { actor, zombies } = start(s.machine, 80, '00002a19-0000-1000-8000-00805f9b34fb');
    await sleep(300);
    expect(zombies).toHaveLength(1);
    expect(zombies[0]).toMatchObject({ probed: true, probeError: 'read timed out' });
    expect(s.probes).toHaveLength(1);
    actor.stop();
  });
});
