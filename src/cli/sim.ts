/**
 * `bluez-cm sim`: serves the BlueZ simulator on a private dbus-daemon so other
 * processes (your app, node-ble, bluetoothctl-free scripts) can talk to it by
 * setting DBUS_SYSTEM_BUS_ADDRESS. Runs until SIGINT/SIGTERM, then leaves
 * nothing behind.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  BluezSimulator,
  DbusDaemonNotFoundError,
  startPrivateBus,
  validateScenario,
  type Scenario,
} from '../testing/index.js';

const HELP = `usage: bluez-cm sim [--scenario FILE.json] [--latency-scale N] [--json]

Starts a private dbus-daemon with the BlueZ simulator on it and prints the bus
address. Point a program at it with DBUS_SYSTEM_BUS_ADDRESS=<address>.

  -s, --scenario FILE   adapters, devices and faults (see examples/scenarios/two-adapters.json);
                        default: one adapter hci0 and one advertising device
      --latency-scale N multiply the default latencies (1 = realistic, 0.01 = fast)
      --json            print one JSON line {address, pid, adapters, devices} instead of text
  -h, --help            this text
`;

const DEFAULT_SCENARIO: Scenario = {
  adapters: [{ name: 'hci0' }],
  devices: [
    {
      address: 'AA:BB:CC:DD:EE:01',
      name: 'sim-sensor',
      services: [
        {
          uuid: '0000180f-0000-1000-8000-00805f9b34fb',
          characteristics: [
            { uuid: '00002a19-0000-1000-8000-00805f9b34fb', flags: ['read', 'notify'], value: [87] },
          ],
        },
      ],
    },
  ],
};

/** Reads and validates a scenario file; the error names the file and the field. */
export function loadScenario(file: string): Scenario {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  try {
    return validateScenario(parsed, 'scenario');
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`, { cause: e });
  }
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (s: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(s);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

export async function run(args: string[]): Promise<number> {
  let values: { scenario?: string; 'latency-scale'?: string; json?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        scenario: { type: 'string', short: 's' },
        'latency-scale': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    process.stderr.write(`bluez-cm sim: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  let scenario: Scenario;
  let latencyScale: number | undefined;
  try {
    scenario = values.scenario ? loadScenario(values.scenario) : DEFAULT_SCENARIO;
    if (values['latency-scale'] !== undefined) {
      latencyScale = Number(values['latency-scale']);
      if (!Number.isFinite(latencyScale) || latencyScale < 0) {
        throw new Error(`--latency-scale must be a number >= 0 (got ${values['latency-scale']})`);
      }
    }
  } catch (e) {
    process.stderr.write(`bluez-cm sim: ${(e as Error).message}\n`);
    return 2;
  }

  let bus;
  try {
    bus = await startPrivateBus();
  } catch (e) {
    process.stderr.write(`bluez-cm sim: ${(e as Error).message}\n`);
    return e instanceof DbusDaemonNotFoundError ? 3 : 1;
  }
  let sim: BluezSimulator | undefined;
  try {
    const stopSignal = waitForSignal();
    sim = await BluezSimulator.start({
      busAddress: bus.address,
      scenario,
      ...(latencyScale !== undefined ? { latencyScale } : {}),
    });
    const state = sim.state();
    const adapters = state.adapters.map((a) => ({ name: a.name, address: a.address, powered: a.powered }));
    const devices = (scenario.devices ?? []).map((d) => ({
      address: d.address.toUpperCase(),
      name: d.name ?? null,
    }));
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ address: bus.address, pid: bus.pid, adapters, devices })}\n`);
    } else {
      process.stdout.write(
        [
          `bluez-cm sim: simulated BlueZ (org.bluez) on a private bus, dbus-daemon pid ${bus.pid}`,
          `address: ${bus.address}`,
          `adapters: ${adapters.map((a) => `${a.name} ${a.address}`).join(', ')}`,
          `devices in the air: ${devices.map((d) => `${d.address}${d.name ? ` (${d.name})` : ''}`).join(', ') || 'none'}`,
          `latencies: connect ${sim.timing.connectMs} ms, resolve ${sim.timing.resolveServicesMs} ms, disconnect ${sim.timing.disconnectMs} ms`,
          '',
          'Use it from another shell:',
          `DBUS_SYSTEM_BUS_ADDRESS=${bus.address}`,
          '',
          'Ctrl-C (SIGINT) or SIGTERM stops it.',
          '',
        ].join('\n'),
      );
    }
    const signal = await stopSignal;
    if (!values.json) process.stdout.write(`bluez-cm sim: ${signal}, stopping\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`bluez-cm sim: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await sim?.stop();
    await bus.stop();
  }
}
