/**
 * `bluez-cm connect` as a child process against the BlueZ simulator on a private bus, reached
 * only through DBUS_SYSTEM_BUS_ADDRESS (as on a real gateway with the system bus).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSimulatedBluez, type DeviceSpec, type SimulatedBluez } from '../../src/testing/index.js';
import { buildCliPackage, eventually, type CliPackage } from './harness.js';
import { startPythonHolder } from '../lock/python-holder.js';

const BMS = 'C8:47:8C:00:00:01';
const GONE = 'C8:47:8C:00:00:02';
const SLOW = 'C8:47:8C:00:00:03';

const device = (address: string, extra: Partial<DeviceSpec> = {}): DeviceSpec => ({
  address,
  name: `bms-${address.slice(-2)}`,
  knownOn: ['hci0', 'hci1'],
  services: [
    {
      uuid: '0000ff00-0000-1000-8000-00805f9b34fb',
      characteristics: [
        { uuid: '0000ff01-0000-1000-8000-00805f9b34fb', flags: ['read', 'notify'], value: [1] },
      ],
    },
  ],
  ...extra,
});

describe('bluez-cm connect', () => {
  let pkg: CliPackage;
  let env: SimulatedBluez | undefined;
  beforeAll(() => {
    pkg = buildCliPackage();
  });
  afterAll(() => pkg.cleanup());
  afterEach(async () => {
    await env?.stop();
    env = undefined;
  });

  async function simulator(): Promise<SimulatedBluez> {
    env = await startSimulatedBluez({
      latencyScale: 0.05,
      scenario: {
        adapters: [{ name: 'hci0' }, { name: 'hci1' }],
        devices: [
          device(BMS),
          // Cached by BlueZ, not advertising: a connect can only time out.
          device(GONE, { inRange: false }),
          device(SLOW),
        ],
        faults: [
          { kind: 'rf-abort', target: { device: BMS, adapter: 'hci1' }, count: 1 },
          { kind: 'connect-latency', target: { device: SLOW }, ms: 60_000 },
        ],
      },
    });
    return env;
  }

  const linked = (sim: SimulatedBluez, address: string) =>
    sim.sim
      .state()
      .adapters.flatMap((a) =>
        a.devices.filter((d) => d.address === address && (d.connected || d.connecting)),
      )
      .map((d) => d.address);

  it('connects with live state output (retrying an RF abort) and disconnects cleanly on SIGINT', async () => {
    const sim = await simulator();
    const run = pkg.cli(['connect', BMS.toLowerCase(), '--adapter', 'hci1', '--adapter', 'hci0'], {
      DBUS_SYSTEM_BUS_ADDRESS: sim.address,
    });
    await eventually('connected line', () => run.out().includes(`connected to ${BMS} on`));
    const out = run.out();
    for (const state of [
      'locking',
      'clearing-stale.inspecting',
      'connecting.searching',
      'connecting.requesting',
      'escalating',
      'backoff.choosing',
      'validating.checking',
      'connected',
    ]) {
      expect(out).toMatch(new RegExp(`^\\[\\s*[\\d.]+s\\] ${state.replace('.', '\\.')}\\s`, 'm'));
    }
    expect(out).toContain('aborted: ');
    expect(linked(sim, BMS)).toEqual([BMS]);

    run.child.kill('SIGINT');
    expect(await run.exit).toBe(0);
    expect(run.out()).toMatch(/SIGINT: disconnecting C8:47:8C:00:00:01 \(verified\)/);
    expect(run.out()).toContain('disconnected (BlueZ reports Connected=false)');
    expect(linked(sim, BMS)).toEqual([]);
    expect(
      sim.sim.calls.filter((c) => c.member === 'Disconnect' && c.path.endsWith('dev_C8_47_8C_00_00_01')),
    ).not.toEqual([]);
  }, 60_000);

  it('--lock: waits while another service (Python, fcntl.flock) holds both slots of hci0, connects once one frees', async () => {
    const sim = await simulator();
    const dir = mkdtempSync(join(tmpdir(), 'bcm-cli-connect-lock-'));
    const holders = [0, 1].map((slot) =>
      startPythonHolder([join(dir, `bleak-cm-hci0-slot-${slot}.lock`)], -1),
    );
    try {
      await Promise.all(holders.map((h) => h.held));
      const run = pkg.cli(['connect', BMS, '--adapter', 'hci0', '--lock', '--lock-dir', dir], {
        DBUS_SYSTEM_BUS_ADDRESS: sim.address,
      });
      await eventually('locking', () => /\] locking\s/.test(run.out()));
      await new Promise((r) => setTimeout(r, 300));
      expect(run.out()).not.toContain('connected to');
      expect(sim.sim.calls.filter((c) => c.member === 'Connect')).toEqual([]);
      holders[0]?.child.kill('SIGKILL');
      await eventually('connected line', () => run.out().includes(`connected to ${BMS} on hci0`));
      run.child.kill('SIGINT');
      expect(await run.exit).toBe(0);
    } finally {
      for (const h of holders) h.child.kill('SIGKILL');
      await Promise.all(holders.map((h) => h.exited));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('a link loss while connected is reported and the device connected again', async () => {
    const sim = await simulator();
    const run = pkg.cli(['connect', BMS, '--adapter', 'hci0'], { DBUS_SYSTEM_BUS_ADDRESS: sim.address });
    await eventually('connected line', () => run.out().includes(`connected to ${BMS} on hci0`));
    sim.sim.dropLink(BMS);
    await eventually('link lost line', () => run.out().includes('link lost on hci0'));
    await eventually('connected again', () => run.out().split(`connected to ${BMS} on hci0`).length === 3);
    expect(linked(sim, BMS)).toEqual([BMS]);
    run.child.kill('SIGINT');
    expect(await run.exit).toBe(0);
    expect(linked(sim, BMS)).toEqual([]);
  }, 60_000);

  it('--json prints JSON lines: states, connected with its attempts, disconnected', async () => {
    const sim = await simulator();
    const run = pkg.cli(['connect', BMS, '--adapter', 'hci0', '--json'], {
      DBUS_SYSTEM_BUS_ADDRESS: sim.address,
    });
    await eventually('connected record', () => run.out().includes('"type":"connected"'));
    run.child.kill('SIGTERM');
    expect(await run.exit).toBe(0);
    const records = run
      .out()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; to?: string; adapter?: string });
    expect(records.filter((r) => r.type === 'state').map((r) => r.to)).toEqual(
      expect.arrayContaining([
        'locking',
        'connecting.requesting',
        'validating.checking',
        'connected',
        'disconnecting',
        'idle',
      ]),
    );
    expect(records.find((r) => r.type === 'connected')?.adapter).toBe('hci0');
    expect(records[records.length - 1]?.type).toBe('disconnected');
  }, 60_000);

  it('SIGINT while connecting cancels: exit 130, no link or pending connect left in BlueZ', async () => {
    const sim = await simulator();
    const run = pkg.cli(['connect', SLOW, '--adapter', 'hci0'], { DBUS_SYSTEM_BUS_ADDRESS: sim.address });
    await eventually('connecting in bluetoothd', () => linked(sim, SLOW).length === 1);
    run.child.kill('SIGINT');
    expect(await run.exit).toBe(130);
    expect(run.err()).toContain('interrupted while connecting C8:47:8C:00:00:03; nothing left connected');
    await eventually('no pending connect', () => linked(sim, SLOW).length === 0, 10_000);
  }, 60_000);

  it('a device that never answers: --timeout-ms ends it with exit 1 and the attempts', async () => {
    const sim = await simulator();
    const run = pkg.cli(['connect', GONE, '--timeout-ms', '1500'], { DBUS_SYSTEM_BUS_ADDRESS: sim.address });
    expect(await run.exit).toBe(1);
    expect(run.err()).toContain(`${GONE} not connected: ${GONE}: not connected within overallTimeoutMs`);
    expect(run.err()).toMatch(/^ {2}#\d+ on hci[01]: cancelled$/m);
    expect(linked(sim, GONE)).toEqual([]);
  }, 60_000);

  it('an adapter BlueZ does not have is named in the error (exit 2)', async () => {
    const sim = await simulator();
    const run = pkg.cli(['connect', BMS, '--adapter', 'hci7'], { DBUS_SYSTEM_BUS_ADDRESS: sim.address });
    expect(await run.exit).toBe(2);
    expect(run.err()).toContain('--adapter "hci7" is not an adapter BlueZ knows (known: hci0, hci1)');
  }, 30_000);

  it('bad arguments exit 2 naming the argument, before touching the bus', async () => {
    const cases: Array<[string[], string]> = [
      [['connect'], '<MAC> is missing'],
      [
        ['connect', 'C8:47:8C:00:00'],
        '<MAC> must be a MAC address like "AA:BB:CC:DD:EE:FF", got "C8:47:8C:00:00"',
      ],
      [['connect', BMS, '--adapter', 'usb0'], '--adapter must be an adapter name like "hci0", got "usb0"'],
      [['connect', BMS, '--timeout-ms=-5'], '--timeout-ms must be an integer >= 1 (got "-5")'],
      [['connect', BMS, '--timeout-ms', '0'], '--timeout-ms must be an integer >= 1 (got "0")'],
      [['connect', BMS, '--timeout-ms', '-5'], "Option '--timeout-ms' argument is ambiguous"],
      [['connect', BMS, '--timeout-ms'], "--timeout-ms <value>' argument missing"],
      [
        ['connect', BMS, '--profile', 'fast'],
        '--profile must be one of battery, sensor, onDemand (got "fast")',
      ],
    ];
    for (const [args, message] of cases) {
      // An address nobody listens on: a usage error must come before any connection attempt.
      const run = pkg.cli(args, { DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/nonexistent/bus' });
      expect(await run.exit, args.join(' ')).toBe(2);
      expect(run.err()).toContain(message);
      expect(run.err()).toContain('usage: bluez-cm connect');
    }
  }, 60_000);
});
