/**
 * The CLI on a bus reached over TCP (ANONYMOUS auth), as a gateway's bus seen from a container or
 * the real-BlueZ tier's guest: DBUS_SYSTEM_BUS_ADDRESS=tcp:… is enough; `--dbus-auth` (or
 * BLUEZ_CM_DBUS_AUTH) chooses the mechanisms explicitly, and a bad list is a usage error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulatedBluez, type SimulatedBluez } from '../../src/testing/index.js';
import { buildCliPackage, type CliPackage } from './harness.js';

interface Report {
  bus: { address: string; reachable: boolean };
  bluetoothd: { running: boolean; answering: boolean };
  adapters: Array<{ name: string; powered: boolean }>;
}

describe('bluez-cm on a tcp: bus', () => {
  let pkg: CliPackage;
  let env: SimulatedBluez;
  let tcp: string;
  beforeAll(async () => {
    pkg = buildCliPackage();
    env = await startSimulatedBluez({
      latencyScale: 0.01,
      bus: { tcp: true },
      scenario: { adapters: [{ name: 'hci0' }] },
    });
    tcp = env.bus.tcpAddress ?? '';
  });
  afterAll(async () => {
    pkg.cleanup();
    await env.stop();
  });

  it('doctor with DBUS_SYSTEM_BUS_ADDRESS=tcp:… reaches bluetoothd (ANONYMOUS by default)', async () => {
    const run = pkg.cli(['doctor', '--json', '--timeout-ms', '5000'], { DBUS_SYSTEM_BUS_ADDRESS: tcp });
    expect(await run.exit).toBe(0);
    const report = JSON.parse(run.out()) as Report;
    expect(report.bus).toEqual({ address: tcp, reachable: true });
    expect(report.bluetoothd).toMatchObject({ running: true, answering: true });
    expect(report.adapters.map((a) => a.name)).toEqual(['hci0']);
  }, 60_000);

  it('--dbus-auth EXTERNAL is honoured: the TCP bus cannot be opened with it', async () => {
    const run = pkg.cli(['doctor', '--json', '--timeout-ms', '1500', '--dbus-auth', 'EXTERNAL'], {
      DBUS_SYSTEM_BUS_ADDRESS: tcp,
    });
    expect(await run.exit).toBe(1);
    expect((JSON.parse(run.out()) as Report).bus.reachable).toBe(false);
  }, 60_000);

  it('BLUEZ_CM_DBUS_AUTH=external,anonymous (case-insensitive) falls through to ANONYMOUS', async () => {
    const run = pkg.cli(['doctor', '--json', '--timeout-ms', '5000'], {
      DBUS_SYSTEM_BUS_ADDRESS: tcp,
      BLUEZ_CM_DBUS_AUTH: 'external,anonymous',
    });
    expect(await run.exit).toBe(0);
    expect((JSON.parse(run.out()) as Report).bus.reachable).toBe(true);
  }, 60_000);

  it('an unknown mechanism is a usage error naming the flag or the variable (exit 2)', async () => {
    const flag = pkg.cli(['connect', 'AA:BB:CC:DD:EE:01', '--dbus-auth', 'PLAIN'], {
      DBUS_SYSTEM_BUS_ADDRESS: tcp,
    });
    expect(await flag.exit).toBe(2);
    expect(flag.err()).toContain('--dbus-auth: unknown mechanism "PLAIN"');
    const variable = pkg.cli(['doctor'], {
      DBUS_SYSTEM_BUS_ADDRESS: tcp,
      BLUEZ_CM_DBUS_AUTH: 'ANONYMOUS,ANONYMOUS',
    });
    expect(await variable.exit).toBe(2);
    expect(variable.err()).toContain('BLUEZ_CM_DBUS_AUTH names ANONYMOUS twice');
  }, 60_000);
});
