/**
 * `bluez-cm demo` (the default command): a simulated two-adapter gateway with a dozen troublesome
 * BLE devices managed by the adapter pool, live per-device state, a summary, and nothing left
 * running. `--node-ble` runs the older walkthrough with plain node-ble instead.
 */
import { createServer } from 'node:http';
import { createPrometheusMetrics, type PrometheusMetrics } from '../metrics/prometheus.js';
import { DbusDaemonNotFoundError } from '../testing/index.js';
import { UsageError, numberFlag, onStopSignal, parseFlags, usageFailure } from './args.js';
import { runDemo, type DemoOutput } from './demo/run.js';
import { runNodeBleWalkthrough } from './demo-node-ble.js';
import { inspectHint, startCliInspector, type CliInspector } from './inspect.js';

const HELP = `usage: bluez-cm demo [--latency-scale N] [--json | --lines | --table] [--node-ble]
                     [--metrics PORT] [--inspect [--inspect-port N]]

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
      --metrics PORT     serve Prometheus metrics on http://127.0.0.1:PORT/metrics
                         (0: a free port); after the summary it keeps serving
                         until Ctrl-C, so the final counts can be scraped
      --inspect          show the machines live in the Stately inspector: prints
                         the page to open (http://localhost:8080, or
                         --inspect-port N; needs the
                         package @statelyai/inspect)
  -h, --help             this text
`;

export async function run(args: string[]): Promise<number> {
  let latencyScale: number;
  let mode: DemoOutput['mode'];
  let nodeBle: boolean;
  let metricsPort: number | undefined;
  let inspect: boolean;
  let inspectPort: number | undefined;
  try {
    const { values } = parseFlags(args, {
      'latency-scale': { type: 'string' },
      json: { type: 'boolean' },
      lines: { type: 'boolean' },
      table: { type: 'boolean' },
      'node-ble': { type: 'boolean' },
      metrics: { type: 'string' },
      inspect: { type: 'boolean' },
      'inspect-port': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    });
    if (values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
    latencyScale = numberFlag(values, 'latency-scale', { min: 0.01, max: 1 }) ?? 0.1;
    nodeBle = values['node-ble'] === true;
    metricsPort = numberFlag(values, 'metrics', { min: 0, max: 65535, integer: true });
    if (metricsPort !== undefined && nodeBle)
      throw new UsageError('--metrics and --node-ble exclude each other');
    inspect = values.inspect === true;
    inspectPort = numberFlag(values, 'inspect-port', { min: 1, max: 65535, integer: true });
    if (inspectPort !== undefined && !inspect) throw new UsageError('--inspect-port needs --inspect');
    if (inspect && nodeBle) throw new UsageError('--inspect and --node-ble exclude each other');
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
  let served: ServedMetrics | undefined;
  let inspector: CliInspector | undefined;
  try {
    if (inspect) {
      try {
        inspector = await startCliInspector(inspectPort);
      } catch (e) {
        return usageFailure('demo', e, HELP);
      }
      if (mode === 'json')
        process.stdout.write(`${JSON.stringify({ t: 0, type: 'inspector', url: inspector.url })}\n`);
      else process.stderr.write(inspectHint('demo', inspector));
    }
    if (metricsPort !== undefined) {
      served = await serveMetrics(metricsPort);
      const url = served.url;
      if (mode === 'json') process.stdout.write(`${JSON.stringify({ t: 0, type: 'metrics', url })}\n`);
      else process.stderr.write(`bluez-cm demo: Prometheus metrics at ${url}\n`);
    }
    const result = await runDemo({
      latencyScale,
      signal: stop.signal,
      ...(served === undefined ? {} : { metrics: served.metrics }),
      ...(inspector === undefined ? {} : { inspect: inspector.inspect }),
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
    if (served !== undefined && stop.received() === null) {
      process.stderr.write(`bluez-cm demo: still serving ${served.url}; Ctrl-C stops\n`);
      await new Promise<void>((resolve) =>
        stop.signal.addEventListener('abort', () => resolve(), { once: true }),
      );
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
    await served?.close();
    inspector?.stop();
    stop.dispose();
  }
}

interface ServedMetrics {
  readonly url: string;
  readonly metrics: PrometheusMetrics;
  close(): Promise<void>;
}

/** Prometheus metrics over HTTP on loopback: GET /metrics, anything else 404. */
async function serveMetrics(port: number): Promise<ServedMetrics> {
  const metrics = await createPrometheusMetrics({ processMetrics: true });
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404).end('only GET /metrics here\n');
      return;
    }
    metrics.text().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const actualPort = typeof address === 'object' && address !== null ? address.port : port;
  return {
    url: `http://127.0.0.1:${actualPort}/metrics`,
    metrics,
    close: () =>
      new Promise<void>((resolve) => {
        metrics.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
