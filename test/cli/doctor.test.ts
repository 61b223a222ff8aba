/**
 * `bluez-cm doctor` as a child process against the BlueZ simulator on a private bus: what it
 * reports about a phantom, an unpowered adapter, a connected device, a missing or hung bluetoothd
 * and a missing bus — always within its deadline.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startPythonHolder } from '../lock/python-holder.js';
import { openBluez } from '../../src/index.js';
import { startSimulatedBluez, type DeviceSpec, type SimulatedBluez } from '../../src/testing/index.js';
import { buildCliPackage, type CliPackage } from './harness.js';

const PHANTOM = 'C8:47:8C:00:00:0A';
const LIVE = 'A4:C1:38:00:00:0B';

const device = (address: string, name: string): DeviceSpec => ({
  address,
  name,
  knownOn: ['hci0'],
  services: [
    {
      uuid: '0000180f-0000-1000-8000-00805f9b34fb',
      characteristics: [{ uuid: '00002a19-0000-1000-8000-00805f9b34fb', flags: ['read'], value: [80] }],
    },
  ],
});

interface Report {
  healthy: boolean;
  bluetoothd: { running: boolean; answering: boolean };
  adapters: Array<{ name: string; powered: boolean }>;
  connected: Array<{ address: string; adapter: string }>;
  phantoms: Array<{ address: string; adapter: string; name: string | null }>;
  locks: {
    dir: string;
    files: Array<{
      path: string;
      kind: string;
      adapter: string;
      slot: number | null;
      holders: Array<{ pid: number; name: string | null }>;
    }>;
  };
  findings: Array<{ level: string; subject: string; message: string; advice?: string }>;
}

describe('bluez-cm doctor', () => {
  let pkg: CliPackage;
  let env: SimulatedBluez | undefined;
  let lockDir: string;
  beforeAll(() => {
    pkg = buildCliPackage();
    lockDir = mkdtempSync(join(tmpdir(), 'bcm-doctor-locks-'));
  });
  afterAll(() => {
    pkg.cleanup();
    rmSync(lockDir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await env?.stop();
    env = undefined;
  });

  async function gateway(): Promise<SimulatedBluez> {
    env = await startSimulatedBluez({
      latencyScale: 0.01,
      scenario: {
        adapters: [{ name: 'hci0' }, { name: 'hci1', powered: false }],
        devices: [device(PHANTOM, 'JBD-BMS'), device(LIVE, 'ATC_THERMO')],
        faults: [{ kind: 'phantom', target: { device: PHANTOM, adapter: 'hci0' } }],
      },
    });
    // A healthy link, opened by another client as a gateway process would.
    const bluez = await openBluez({ busAddress: env.address });
    try {
      await bluez.connect('hci0', LIVE, { waitServicesResolved: true, timeoutMs: 5000 });
    } finally {
      await bluez.close();
    }
    return env;
  }

  it('reports the phantom, the unpowered adapter and the connected device, each with advice (exit 1)', async () => {
    const sim = await gateway();
    const run = pkg.cli(['doctor', '--lock-dir', lockDir], { DBUS_SYSTEM_BUS_ADDRESS: sim.address });
    expect(await run.exit).toBe(1);
    const out = run.out();
    expect(out).toMatch(/^ok\s+bluetoothd\s+running \(org\.bluez owned by :1\.\d+\)$/m);
    expect(out).toMatch(
      new RegExp(
        `^WARN\\s+${PHANTOM}\\s+phantom on hci0 \\(JBD-BMS\\): Connected, but its services never resolved$`,
        'm',
      ),
    );
    expect(out).toContain(`bluez-cm connect ${PHANTOM} --close-inactive`);
    expect(out).toMatch(/^WARN\s+hci1\s+not powered/m);
    expect(out).toContain('bluetoothctl power on');
    expect(out).toMatch(
      new RegExp(`^ok\\s+${LIVE}\\s+connected on hci0 \\(ATC_THERMO\\), services resolved$`, 'm'),
    );
    expect(out).toMatch(/^info\s+locks\s+no slot or scan lock files in \/tmp\/bcm-doctor-locks-/m);
    expect(out).toContain('2 problems found');
  }, 60_000);

  it('--json: the phantom, the connected device, the adapters, and the slot a Python service holds', async () => {
    const sim = await gateway();
    const holder = startPythonHolder([join(lockDir, 'bleak-cm-hci0-slot-1.lock')], -1);
    const held = await holder.held;
    const run = pkg.cli(['doctor', '--json', '--lock-dir', lockDir], {
      DBUS_SYSTEM_BUS_ADDRESS: sim.address,
    });
    await run.exit.finally(() => holder.child.kill('SIGKILL'));
    await holder.exited;
    expect(await run.exit).toBe(1);
    const report = JSON.parse(run.out()) as Report;
    expect(report.healthy).toBe(false);
    expect(report.bluetoothd).toMatchObject({ running: true, answering: true });
    expect(report.phantoms).toEqual([{ address: PHANTOM, adapter: 'hci0', name: 'JBD-BMS' }]);
    expect(report.connected).toEqual([{ address: LIVE, adapter: 'hci0', name: 'ATC_THERMO' }]);
    expect(report.adapters.map((a) => [a.name, a.powered])).toEqual([
      ['hci0', true],
      ['hci1', false],
    ]);
    expect(report.locks.files).toEqual([
      {
        path: held,
        kind: 'slot',
        adapter: 'hci0',
        slot: 1,
        holders: [{ pid: holder.child.pid, name: expect.stringMatching(/^python3/) as unknown }],
      },
    ]);
    for (const f of report.findings.filter((x) => x.level === 'warn' || x.level === 'error')) {
      expect(f.advice, f.message).toBeTruthy();
    }
  }, 60_000);

  it('bluetoothd gone (simulator stopped, bus still up): reported at once, not waited on', async () => {
    env = await startSimulatedBluez({ scenario: { adapters: [{ name: 'hci0' }] } });
    await env.sim.stop();
    const run = pkg.cli(['doctor', '--timeout-ms', '3000'], { DBUS_SYSTEM_BUS_ADDRESS: env.address });
    expect(await run.exit).toBe(1);
    expect(run.out()).toMatch(
      /^ERROR\s+bluetoothd\s+org\.bluez has no owner on the bus: bluetoothd is not running$/m,
    );
    expect(run.out()).toContain('sudo systemctl start bluetooth');
  }, 30_000);

  it('bluetoothd owns org.bluez but never answers: reported after the deadline as hung', async () => {
    env = await startSimulatedBluez({ scenario: { adapters: [{ name: 'hci0' }] } });
    env.sim.inject({
      kind: 'hang',
      target: { daemon: true },
      interface: 'org.freedesktop.DBus.ObjectManager',
      member: 'GetManagedObjects',
    });
    const run = pkg.cli(['doctor', '--json', '--timeout-ms', '1000'], {
      DBUS_SYSTEM_BUS_ADDRESS: env.address,
    });
    expect(await run.exit).toBe(1);
    const report = JSON.parse(run.out()) as Report;
    expect(report.bluetoothd).toMatchObject({ running: true, answering: false });
    expect(report.findings.find((f) => f.subject === 'bluetoothd')?.message).toContain('did not answer');
  }, 30_000);

  it('no bus at DBUS_SYSTEM_BUS_ADDRESS: reported (exit 1)', async () => {
    const run = pkg.cli(['doctor'], { DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/nonexistent/bluez-cm/bus' });
    expect(await run.exit).toBe(1);
    expect(run.out()).toContain('the socket /nonexistent/bluez-cm/bus does not exist');
  }, 30_000);

  it('bad arguments exit 2 naming the flag', async () => {
    for (const [args, message] of [
      [['doctor', '--timeout-ms', '5'], '--timeout-ms must be an integer >= 100 and <= 600000 (got "5")'],
      [['doctor', 'now'], "Unexpected argument 'now'"],
    ] as const) {
      const run = pkg.cli([...args]);
      expect(await run.exit).toBe(2);
      expect(run.err()).toContain(message);
    }
  }, 30_000);
});
