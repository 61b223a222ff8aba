/**
 * `bluez-cm demo` (the default command): a simulated two-adapter gateway with a dozen troublesome
 * BLE devices managed by the adapter pool, live per-device state, a summary, and nothing left
 * running. `--node-ble` runs the older walkthrough with plain node-ble instead.
 */
import { DbusDaemonNotFoundError } from '../testing/index.js';
import { UsageError, numberFlag, onStopSignal, parseFlags, usageFailure } from './args.js';
import { runDemo, type DemoOutput } from './demo/run.js';
import { runNodeBleWalkthrough } from './demo-node-ble.js';

const HELP = `usage: bluez-cm demo [--latency-scale N] [--json | --lines | --table] [--node-ble]

Starts a private dbus-daemon and the BlueZ simulator playing a gateway with two
adapters and twelve BLE devices (battery monitors, a shunt, thermometers, a relay,
…), each with a BlueZ failure it is known for: RF aborts, a phantom connection,
a stale InProgress, empty and late GATT, a Connect that never answers, a link
drop, a device only one adapter hears, a controller with fewer slots than
configured, a device whose battery is dead. The adapter pool connects them all;
the demo shows each device's connection state live, disconnects everything,
prints a summary and stops what it started. Exit 0 when every device ended as
expected, 1 otherwise, 3 when dbus-daemon is missing (Debian package "dbus").

      --latency-scale N  multiply every BlueZ latency and library timeout by N,
                         0.01..1 (default 0.1: ten times faster than real time)
      --json             JSON lines: start, state, pool, log, summary, stopped
      --lines            one line per state change (the default when stdout is
                         not a terminal)
      --table            the live table (the default on a terminal)
      --node-ble         plain node-ble on the simulator, without the manager
  -h, --help             this text
`;

export async function run(args: string[]): Promise<number> {
  let latencyScale: number;
  let mode: DemoOutput['mode'];
  let nodeBle: boolean;
  try {
    const { values } = parseFlags(args, {
      'latency-scale': { type: 'string' },
      json: { type: 'boolean' },
      lines: { type: 'boolean' },
      table: { type: 'boolean' },
      'node-ble': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    });
    if (values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
    latencyScale = numberFlag(values, 'latency-scale', { min: 0.01, max: 1 }) ?? 0.1;
    nodeBle = values['node-ble'] === true;
    const chosen = (['json', 'lines', 'table'] as const).filter((m) => values[m] === true);
    if (chosen.length > 1) {
      throw new UsageError(`${chosen.map((m) => `--${m}`).join(' and ')} exclude each other`);
    }
    mode = chosen[0] ?? (process.stdout.isTTY ? 'table' : 'lines');
  } catch (e) {
    return usageFailure('demo', e, HELP);
  }
  if (nodeBle) return runNodeBleWalkthrough(latencyScale);

  const stop = onStopSignal();
  try {
    const result = await runDemo({
      latencyScale,
      signal: stop.signal,
      output: {
        mode,
        write: (text) => process.stdout.write(text),
        columns: () => process.stdout.columns ?? 160,
      },
    });
    if (result.problem !== undefined) {
      process.stderr.write(`bluez-cm demo: ${result.problem}\n`);
      return stop.received() !== null ? 130 : 1;
    }
    return 0;
  } catch (e) {
    if (e instanceof DbusDaemonNotFoundError) {
      process.stderr.write(`bluez-cm demo: ${e.message}\n`);
      return 3;
    }
    process.stderr.write(`bluez-cm demo: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  } finally {
    stop.dispose();
  }
}
