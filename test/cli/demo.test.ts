/**
 * `bluez-cm demo` as a user runs it: a real child process, a real private dbus-daemon, the BlueZ
 * simulator and the adapter pool. Asserts outcomes (every device's final state, the workarounds
 * taken, nothing left running), not durations.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, buildCliPackage, dbusDaemonsMentioning, eventually, type CliPackage } from './harness.js';

/** The demo's devices and how each must end (src/cli/demo/world.ts). */
const EXPECTED: ReadonlyArray<[name: string, final: 'connected' | 'failed']> = [
  ['JBD-SP04S020 starter', 'connected'],
  ['JBD-SP04S034 house', 'connected'],
  ['SmartShunt HQ2145', 'connected'],
  ['ATC_30004 fridge', 'connected'],
  ['ATC_30005 freezer', 'connected'],
  ['ESP32 relay x4', 'connected'],
  ['Mopeka water tank', 'connected'],
  ['BT-TH-6008 solar MPPT', 'connected'],
  ['Phoenix 12/800', 'connected'],
  ['GVH5075 cellar', 'connected'],
  ['Ruuvi 0011 outdoor', 'connected'],
  ['SBDW-0012 garage door', 'failed'],
];

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('bluez-cm demo', () => {
  let pkg: CliPackage;
  beforeAll(() => {
    pkg = buildCliPackage();
  });
  afterAll(() => pkg.cleanup());

  it('connects the simulated gateway, prints every device final state and a summary, exits 0, and leaves no dbus-daemon behind', async () => {
    const run = pkg.cli(['demo']); // stdout is a pipe: one line per state change
    const code = await run.exit;
    const out = run.out();
    expect(run.err()).toBe('');
    expect(code).toBe(0);

    const summary = out.slice(out.indexOf('Summary after'));
    expect(summary).not.toBe('');
    for (const [name, final] of EXPECTED) {
      expect(summary).toMatch(new RegExp(`^${escape(name)}\\s+${final}\\s+hci[01]\\s+\\d+`, 'm'));
    }
    // Each workaround the scenario provokes shows up in the summary.
    for (const text of [
      'phantom cleared (RemoveDevice, rediscovered)',
      'stale pending connect cancelled',
      'services appeared late',
      'validation (VALIDATION_FAILED)',
      'noReply (ATTEMPT_DEADLINE)',
      'aborted (le-connection-abort-by-local)',
      'Totals: 11/11 devices connected as expected, 1/1 expected failure',
      'BlueZ holds 0 links',
    ]) {
      expect(summary).toContain(text);
    }
    // The tank's link drops once after connect, and again in the brown-out if it sits on hci0.
    expect(summary).toMatch(/^Mopeka water tank .*\n.*link lost [12]×, reconnected [12]×/m);
    expect(summary).toMatch(
      /^Power cut: hci0 off for 0\.30 s, (\d+) links dropped, all \1 back [\d.]+ s after power returned\.$/m,
    );
    // The pool learns the number of slots it held on hci1 when the dongle refused a link: 4 when only
    // the 4 real links were held, more when devices still connecting there were counted too.
    expect(summary).toMatch(/the controller holds 4; after a refused link the pool uses [4-6] as its limit/);
    // Non-TTY output is one line per state change, with the connection actor's state names.
    expect(out).toMatch(/^\[\s*[\d.]+s\] JBD-SP04S020 starter\s+hci0\s+clearing-stale → phantom/m);
    expect(out).toMatch(/^\[\s*[\d.]+s\] SBDW-0012 garage door\s+hci\d\s+escalating → failed/m);
    expect(out).not.toContain('\x1b[');
    expect(out).toContain('nothing left running');

    // Nothing left: the daemon, its socket, its directory.
    const pid = Number(/private dbus-daemon \(pid (\d+)\)/.exec(out)?.[1]);
    const socket = /at unix:path=(\S+);/.exec(out)?.[1] ?? '';
    expect(pid).toBeGreaterThan(0);
    expect(socket).not.toBe('');
    expect(alive(pid)).toBe(false);
    expect(existsSync(socket)).toBe(false);
    expect(dbusDaemonsMentioning(dirname(socket))).toEqual([]);
  }, 90_000);

  it('--json prints valid JSON lines: start, the state changes of every device, pool events, a summary with ok=true, stopped', async () => {
    const run = pkg.cli(['demo', '--json']);
    expect(await run.exit).toBe(0);
    const records = run
      .out()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; [k: string]: unknown });
    expect(records[0]?.type).toBe('start');
    expect(records[records.length - 1]?.type).toBe('stopped');
    const summary = records.find((r) => r.type === 'summary') as unknown as {
      ok: boolean;
      devices: Array<{ name: string; final: string; attempts: unknown[] }>;
      totals: { connected: number; expectedConnected: number };
      linksAfterTeardown: number;
    };
    expect(summary.ok).toBe(true);
    expect(summary.devices.map((d) => [d.name, d.final])).toEqual(EXPECTED.map(([n, f]) => [n, f]));
    expect(summary.totals.connected).toBe(summary.totals.expectedConnected);
    expect(summary.linksAfterTeardown).toBe(0);

    const states = records.filter((r) => r.type === 'state');
    const visited = new Set(states.map((r) => r.to as string));
    for (const name of [
      'idle',
      'locking',
      'clearing-stale',
      'phantom',
      'connecting',
      'validating',
      'connected',
      'escalating',
      'backoff',
      'disconnecting',
      'failed',
    ]) {
      expect(visited).toContain(name);
    }
    expect(records.filter((r) => r.type === 'pool').map((r) => (r.event as { type: string }).type)).toEqual(
      expect.arrayContaining([
        'device-connected',
        'device-link-lost',
        'device-rotated',
        'slot-limit-learned',
      ]),
    );
  }, 90_000);

  it('--table redraws a per-device table in place (what a terminal shows), then the summary', async () => {
    const run = pkg.cli(['demo', '--table', '--latency-scale', '0.05']);
    expect(await run.exit).toBe(0);
    const out = run.out();
    const frames = out.split(new RegExp(`${'\x1b'}\\[\\d+F`)); // cursor back to the table's first line
    expect(frames.length).toBeGreaterThan(3);
    const last = frames[frames.length - 1] ?? '';
    expect(last).toMatch(/^DEVICE\s+ADDRESS\s+ADAPTER\s+STATE\s+ATT\s+TROUBLE\s+LAST/m);
    for (const [name, final] of EXPECTED) {
      expect(last).toMatch(new RegExp(`^${escape(name)}\\s+[0-9A-F:]{17}\\s+hci[01]\\s+${final}`, 'm'));
    }
    expect(last).toMatch(/hci1 usb-dongle █+░* \d\/[4-6] \(limit learned: [4-6]\)/);
    expect(out).toContain('Totals: 11/11 devices connected as expected');
    // Line mode's per-change lines are not printed in table mode.
    expect(out).not.toMatch(/^\[\s*[\d.]+s\] JBD-SP04S020 starter\s+hci0\s+clearing-stale → phantom/m);
  }, 90_000);

  it('Ctrl-C during the demo stops everything it started and exits 130', async () => {
    const run = pkg.cli(['demo']);
    await eventually('the first state lines', () => / → connecting /.test(run.out()));
    run.child.kill('SIGINT');
    expect(await run.exit).toBe(130);
    expect(run.err()).toContain('interrupted before every device settled');
    const socket = /at unix:path=(\S+);/.exec(run.out())?.[1] ?? '';
    const pid = Number(/private dbus-daemon \(pid (\d+)\)/.exec(run.out())?.[1]);
    expect(alive(pid)).toBe(false);
    expect(existsSync(socket)).toBe(false);
    expect(dbusDaemonsMentioning(dirname(socket))).toEqual([]);
  }, 60_000);

  it('--node-ble runs the plain node-ble walkthrough on the simulator and stops its bus', async () => {
    const run = pkg.cli(['demo', '--node-ble']);
    // On failure the walkthrough names the step that missed its deadline on stderr.
    expect(await run.exit, run.err()).toBe(0);
    const out = run.out();
    for (const line of [
      'node-ble sees adapters: hci0, hci1',
      'failed: org.bluez.Error.Failed "le-connection-abort-by-local"',
      'read battery level: 87 %',
      'notification 3:',
      'event: disconnect (Connected=false)',
      'nothing left running',
    ]) {
      expect(out).toContain(line);
    }
    const socket = /private bus unix:path=(\S+)/.exec(out)?.[1] ?? '';
    expect(socket).not.toBe('');
    expect(existsSync(socket)).toBe(false);
  }, 60_000);

  it('bad arguments exit 2 with a message naming the flag, before starting anything', async () => {
    const cases: Array<[string[], string]> = [
      [['demo', '--latency-scale', '0'], '--latency-scale must be a number >= 0.01 and <= 1 (got "0")'],
      [['demo', '--latency-scale', 'fast'], '--latency-scale must be a number'],
      [['demo', '--bogus'], "'--bogus'"],
      [['demo', '--json', '--lines'], '--json and --lines exclude each other'],
    ];
    for (const [args, message] of cases) {
      const run = pkg.cli(args);
      expect(await run.exit, args.join(' ')).toBe(2);
      expect(run.err()).toContain(message);
      expect(run.err()).toContain('usage: bluez-cm demo');
      expect(run.out()).toBe('');
    }
  }, 60_000);
});
