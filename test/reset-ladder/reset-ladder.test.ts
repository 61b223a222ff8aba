/**
 * The recovery ladder (SPEC §4) against a fake sysfs/rfkill tree in a temp dir, an in-memory BlueZ
 * port and a real child process as the restart command.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createActor, toPromise } from 'xstate';
import {
  ResetLadder,
  resetLadderActor,
  type LadderLogEntry,
  type ResetLadderOptions,
} from '../../src/actors/reset-ladder.js';
import { AdapterError } from '../../src/bluez/errors.js';
import { FAKE_RESTART, fakeSystem, type FakeSystem } from './fake-system.js';

let sys: FakeSystem;
let logs: LadderLogEntry[];

beforeEach(async () => {
  sys = await fakeSystem();
  logs = [];
});
afterEach(async () => {
  await sys.cleanup();
});

function everyStep(extra: Partial<ResetLadderOptions> = {}, exitCode = '0'): ResetLadder {
  return new ResetLadder({
    bluez: sys.bluez,
    clock: sys.clock,
    sysfsRoot: sys.root,
    log: (e) => logs.push(e),
    steps: { rfkillUnblock: true, usbReauthorize: true, restartBluetoothd: true },
    restartCommand: [process.execPath, FAKE_RESTART, sys.restartRecord, exitCode, 'restart', 'bluetooth'],
    stepTimeoutMs: 10_000,
    ...extra,
  });
}

describe('reset ladder order', () => {
  it('a controller that stays down goes through every enabled step in SPEC order, then reports not recovered', async () => {
    sys.adapters.get('hci0')!.canPowerOn = false;
    await writeFile(sys.rfkillSoft, '1\n');
    const report = await everyStep().run('hci0');

    expect(report.recovered).toBe(false);
    expect(report.steps.map((s) => [s.step, s.result])).toEqual([
      ['stopDiscovery', 'ok'],
      ['powerCycle', 'failed'],
      ['rfkillUnblock', 'failed'],
      ['usbReauthorize', 'failed'],
      ['restartBluetoothd', 'failed'],
    ]);
    // The system writes happened, in order: power off/on, soft block cleared, USB authorized 0 → 1,
    // then the restart command ran (a real child process) and org.bluez was awaited.
    const firstPowerOff = sys.events.indexOf('power hci0 off');
    const softCleared = sys.events.findIndex((e) => e.startsWith('sleep') && e.includes('soft=0'));
    const deauthorized = sys.events.findIndex((e) => e.includes('authorized=0'));
    const bluezAwaited = sys.events.indexOf('waitForBluez');
    expect(sys.events[0]).toBe('stopDiscovery hci0');
    expect(firstPowerOff).toBeGreaterThan(0);
    expect(softCleared).toBeGreaterThan(firstPowerOff);
    expect(deauthorized).toBeGreaterThan(softCleared);
    expect(bluezAwaited).toBeGreaterThan(deauthorized);
    expect(await sys.restartArgv()).toEqual([['restart', 'bluetooth']]);
    expect(logs.at(-1)?.level).toBe('error');
  });

  it('stops at the first step that brings the adapter back: a working power cycle runs nothing else', async () => {
    const report = await everyStep().run('hci0');
    expect(report.recovered).toBe(true);
    expect(report.steps.map((s) => s.step)).toEqual(['stopDiscovery', 'powerCycle']);
    expect(sys.events.filter((e) => e.startsWith('power'))).toEqual(['power hci0 off', 'power hci0 on']);
    expect(await sys.restartArgv()).toEqual([]);
  });

  it('a soft-blocked controller is recovered by the rfkill step after the power cycle fails', async () => {
    await writeFile(sys.rfkillSoft, '1\n');
    const report = await everyStep().run('hci0');
    expect(report.steps.map((s) => [s.step, s.result])).toEqual([
      ['stopDiscovery', 'ok'],
      ['powerCycle', 'failed'],
      ['rfkillUnblock', 'ok'],
    ]);
    expect(report.recovered).toBe(true);
  });

  it('a wedged USB controller comes back after authorized 0 → 1 (a replug)', async () => {
    const hci0 = sys.adapters.get('hci0')!;
    hci0.canPowerOn = false;
    sys.onSleep = ({ authorized }) => {
      if (authorized === '0') {
        hci0.canPowerOn = true;
        hci0.powered = true;
      }
    };
    const report = await everyStep().run('hci0');
    expect(report.steps.map((s) => [s.step, s.result])).toEqual([
      ['stopDiscovery', 'ok'],
      ['powerCycle', 'failed'],
      ['rfkillUnblock', 'not-applicable'],
      ['usbReauthorize', 'ok'],
    ]);
    expect(report.recovered).toBe(true);
    expect(sys.events.filter((e) => e.includes('authorized=0'))).toHaveLength(1);
    expect(await readFile(sys.usbAuthorized, 'utf8')).toBe('1');
    expect(await sys.restartArgv()).toEqual([]);
  });

  it('a UART controller has no USB step; a hard rfkill block is reported and the ladder goes on to the restart', async () => {
    sys.adapters.get('hci1')!.canPowerOn = false;
    await writeFile(sys.rfkillHard.replace('rfkill0', 'rfkill1'), '1\n');
    const report = await everyStep().run('hci1');
    expect(report.steps.map((s) => [s.step, s.result])).toEqual([
      ['stopDiscovery', 'ok'],
      ['powerCycle', 'failed'],
      ['rfkillUnblock', 'failed'],
      ['usbReauthorize', 'not-applicable'],
      ['restartBluetoothd', 'failed'],
    ]);
    expect(report.steps[2]?.detail).toMatch(/hard-blocked/);
    expect(report.steps[3]?.detail).toMatch(/not a USB device/);
  });

  it('steps that are not enabled do not run (default: stop discovery and power cycle only)', async () => {
    sys.adapters.get('hci0')!.canPowerOn = false;
    const ladder = new ResetLadder({ bluez: sys.bluez, clock: sys.clock, sysfsRoot: sys.root });
    const report = await ladder.run('hci0');
    expect(report.steps.map((s) => [s.step, s.result])).toEqual([
      ['stopDiscovery', 'ok'],
      ['powerCycle', 'failed'],
      ['rfkillUnblock', 'disabled'],
      ['usbReauthorize', 'disabled'],
      ['restartBluetoothd', 'disabled'],
    ]);
    expect(sys.events.some((e) => e.includes('authorized=0'))).toBe(false);
  });
});

describe('reset ladder cooldowns', () => {
  it('a failed power cycle still starts the 30 s cooldown of that adapter; other adapters are not affected', async () => {
    sys.adapters.get('hci0')!.canPowerOn = false;
    const ladder = everyStep({ steps: {} });
    expect((await ladder.run('hci0')).steps[1]).toMatchObject({ step: 'powerCycle', result: 'failed' });

    sys.clock.advance(10_000);
    expect((await ladder.run('hci0')).steps[1]).toMatchObject({ step: 'powerCycle', result: 'cooldown' });
    expect((await ladder.run('hci1')).steps[1]).toMatchObject({ step: 'powerCycle', result: 'ok' });

    sys.clock.advance(20_001);
    sys.adapters.get('hci0')!.canPowerOn = true;
    expect((await ladder.run('hci0')).steps[1]).toMatchObject({ step: 'powerCycle', result: 'ok' });
    expect(sys.events.filter((e) => e === 'power hci0 off')).toHaveLength(2);
  });

  it('a failed USB re-authorization and a failed restart command start their 300 s cooldowns', async () => {
    sys.adapters.get('hci0')!.canPowerOn = false;
    const ladder = everyStep({}, '1');
    const first = await ladder.run('hci0');
    expect(first.steps.find((s) => s.step === 'restartBluetoothd')?.detail).toMatch(
      /exit code 1.*Job for bluetooth.service failed/,
    );
    expect(ladder.lastTried('usbReauthorize', 'hci0')).toBe(sys.clock.now());
    expect(ladder.lastTried('restartBluetoothd', 'hci0')).toBe(sys.clock.now());

    sys.clock.advance(60_000);
    const second = await ladder.run('hci0');
    expect(second.steps.map((s) => [s.step, s.result])).toEqual([
      ['stopDiscovery', 'ok'],
      ['powerCycle', 'failed'],
      ['rfkillUnblock', 'not-applicable'],
      ['usbReauthorize', 'cooldown'],
      ['restartBluetoothd', 'cooldown'],
    ]);
    // bluetoothd is one daemon for every adapter: its cooldown is global.
    sys.adapters.get('hci1')!.canPowerOn = false;
    expect((await ladder.run('hci1')).steps.at(-1)).toMatchObject({
      step: 'restartBluetoothd',
      result: 'cooldown',
    });
    expect(await sys.restartArgv()).toHaveLength(1);

    sys.clock.advance(240_001);
    await ladder.run('hci0');
    expect(await sys.restartArgv()).toHaveLength(2);
  });
});

describe('reset ladder announcements and bounds', () => {
  it('names the connections a power cycle will drop before it powers off, and only those of that adapter', async () => {
    sys.adapters.get('hci0')!.connected = ['AA:00:00:00:00:01', 'AA:00:00:00:00:02'];
    sys.adapters.get('hci1')!.connected = ['BB:00:00:00:00:01'];
    const order: string[] = [];
    const ladder = new ResetLadder({
      bluez: {
        ...sys.bluez,
        setPowered: (a, on, o) => (order.push(`power ${a} ${on}`), sys.bluez.setPowered(a, on, o)),
      },
      clock: sys.clock,
      sysfsRoot: sys.root,
      log: (e) => {
        logs.push(e);
        order.push(`log ${e.message}`);
      },
    });
    await ladder.run('hci0');
    const drop = logs.find((e) => e.drops !== undefined);
    expect(drop?.message).toBe(
      'powerCycle on hci0 will drop connections: AA:00:00:00:00:01@hci0, AA:00:00:00:00:02@hci0',
    );
    expect(drop?.level).toBe('warn');
    expect(order.indexOf(`log ${drop?.message}`)).toBeLessThan(order.indexOf('power hci0 false'));
  });

  it('a bluetoothd restart names the connections of every adapter', async () => {
    sys.adapters.get('hci0')!.canPowerOn = false;
    sys.adapters.get('hci0')!.connected = ['AA:00:00:00:00:01'];
    sys.adapters.get('hci1')!.connected = ['BB:00:00:00:00:01'];
    const ladder = everyStep({ steps: { powerCycle: false, restartBluetoothd: true } });
    await ladder.run('hci0');
    const restartDrop = logs.find((e) => e.step === 'restartBluetoothd' && e.drops !== undefined);
    expect(restartDrop?.message).toBe(
      'restartBluetoothd on hci0 will drop connections: AA:00:00:00:00:01@hci0, BB:00:00:00:00:01@hci1',
    );
  });

  it('a Powered call that never replies ends at the step deadline and the ladder goes on', async () => {
    sys.adapters.get('hci0')!.hangPowerOn = true;
    const ladder = everyStep({ stepTimeoutMs: 200, steps: { restartBluetoothd: false } });
    const report = await ladder.run('hci0');
    expect(report.steps[1]).toMatchObject({ step: 'powerCycle', result: 'failed' });
    expect(report.steps[1]?.detail).toMatch(/exceeded 200 ms/);
  });

  it('cancellation ends the run with the AbortError, after one bounded power-on attempt so the adapter is not left off', async () => {
    sys.adapters.get('hci0')!.hangPowerOn = true;
    const ladder = everyStep({ stepTimeoutMs: 300 });
    const controller = new AbortController();
    const run = ladder.run('hci0', controller.signal);
    setTimeout(() => controller.abort(new DOMException('stop', 'AbortError')), 50);
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(sys.events.filter((e) => e === 'power hci0 on')).toHaveLength(2);
    expect(await sys.restartArgv()).toEqual([]);
  });

  it('cancelled between Powered=false and Powered=true, the adapter is still powered on again', async () => {
    const controller = new AbortController();
    const ladder = new ResetLadder({
      bluez: sys.bluez,
      sysfsRoot: sys.root,
      clock: {
        now: sys.clock.now,
        // The pause after power-off lasts until the caller cancels.
        sleep: (_ms, signal) =>
          new Promise((_, reject) =>
            signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
          ),
      },
    });
    const run = ladder.run('hci0', controller.signal);
    await new Promise((r) => setTimeout(r, 20));
    expect(sys.adapters.get('hci0')?.powered).toBe(false);
    controller.abort(new DOMException('stop', 'AbortError'));
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(sys.events.slice(-2)).toEqual(['power hci0 off', 'power hci0 on']);
    expect(sys.adapters.get('hci0')?.powered).toBe(true);
  });

  it('two devices escalating on one adapter at once share one ladder run', async () => {
    const ladder = everyStep();
    const [a, b] = await Promise.all([ladder.run('hci0'), ladder.run('hci0')]);
    expect(a).toBe(b);
    expect(sys.events.filter((e) => e === 'power hci0 off')).toHaveLength(1);
  });

  it('rejects unusable options with the field name before touching anything', () => {
    expect(() => new ResetLadder({ bluez: sys.bluez, steps: { restartBluetoothd: true } })).toThrow(
      /restartBluetoothd needs resetLadder.restartCommand/,
    );
    expect(() => new ResetLadder({ bluez: sys.bluez, powerCycleCooldownMs: -1 })).toThrow(RangeError);
    expect(
      () => new ResetLadder({ bluez: sys.bluez, restartCommand: ['systemctl', 'restart', 'bluetooth'] }),
    ).not.toThrow();
    expect(() => new ResetLadder({ bluez: sys.bluez, restartCommand: [] })).toThrow(/restartCommand/);
    expect(() => everyStep().run('hci0; reboot')).toThrow(RangeError);
    expect(sys.events).toEqual([]);
  });
});

describe('resetAdapter actor', () => {
  it('rejects with RESET_FAILED naming every step when the adapter was not recovered', async () => {
    sys.adapters.get('hci0')!.canPowerOn = false;
    const actor = createActor(resetLadderActor(everyStep({ steps: {} })), { input: { adapter: 'hci0' } });
    actor.start();
    const error = await toPromise(actor).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdapterError);
    expect(error).toMatchObject({ code: 'RESET_FAILED', adapter: 'hci0' });
    expect((error as Error).message).toMatch(/powerCycle: failed/);
  });

  it('resolves when the ladder recovered the adapter', async () => {
    const actor = createActor(resetLadderActor(everyStep()), { input: { adapter: 'hci0' } });
    actor.start();
    await expect(toPromise(actor)).resolves.toBeUndefined();
  });
});
