/**
 * `--inspect` of `bluez-cm connect` and `bluez-cm demo`, as child processes: the CLI starts
 * `@statelyai/inspect`'s bridge, prints the page to open, and the page's WebSocket carries the
 * connection actor's inspection events (here read by a WebSocket client standing in for the browser).
 */
import { createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startSimulatedBluez, type SimulatedBluez } from '../../src/testing/index.js';
import { buildCliPackage, eventually, type CliPackage } from './harness.js';

const BMS = 'C8:47:8C:00:00:01';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

describe('bluez-cm --inspect', () => {
  let pkg: CliPackage;
  let env: SimulatedBluez | undefined;
  beforeAll(() => {
    pkg = buildCliPackage();
  }, 120_000);
  afterAll(() => pkg.cleanup());
  afterEach(async () => {
    await env?.stop();
    env = undefined;
  });

  it('connect --inspect prints the page to open; its WebSocket carries the connection actor', async () => {
    env = await startSimulatedBluez({
      latencyScale: 0.05,
      scenario: {
        adapters: [{ name: 'hci0' }],
        devices: [
          {
            address: BMS,
            name: 'bms',
            knownOn: ['hci0'],
            services: [
              {
                uuid: '0000ff00-0000-1000-8000-00805f9b34fb',
                characteristics: [
                  { uuid: '0000ff01-0000-1000-8000-00805f9b34fb', flags: ['read', 'notify'], value: [1] },
                ],
              },
            ],
          },
        ],
      },
    });
    const port = await freePort();
    const run = pkg.cli(['connect', BMS, '--inspect', '--inspect-port', String(port)], {
      DBUS_SYSTEM_BUS_ADDRESS: env.address,
    });
    await eventually('connected line', () => run.out().includes(`connected to ${BMS} on hci0`));
    expect(run.err()).toContain(`Stately inspector: open http://localhost:${port} in a browser`);
    const page = await fetch(`http://localhost:${port}/`).then((r) => r.text());
    expect(page).toContain('https://stately.ai/inspect');
    // What the browser page would receive: the bridge replays what the CLI sent so far.
    const received: string[] = [];
    const ws = new WebSocket(`ws://localhost:${port}`);
    ws.on('message', (data) => received.push(String(data)));
    try {
      await eventually('inspection events', () => received.some((m) => m.includes('"connection"')));
      const events = received.map((m) => JSON.parse(m) as { type?: string });
      expect(events.some((e) => e.type === '@xstate.snapshot' || e.type === '@xstate.event')).toBe(true);
    } finally {
      ws.close();
    }
    run.child.kill('SIGINT');
    expect(await run.exit).toBe(0);
  }, 60_000);

  it('bad combinations exit 2 naming the flag', async () => {
    const cases: Array<[string[], string]> = [
      [['demo', '--inspect', '--node-ble'], '--inspect and --node-ble exclude each other'],
      [['demo', '--inspect-port', '9000'], '--inspect-port needs --inspect'],
    ];
    for (const [args, message] of cases) {
      const run = pkg.cli(args);
      expect(await run.exit, args.join(' ')).toBe(2);
      expect(run.err()).toContain(message);
    }
  });
});
