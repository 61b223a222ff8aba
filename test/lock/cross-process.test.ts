/**
 * Services in separate processes sharing one adapter: three Node processes running the library and
 * one Python process using fcntl.flock on the same slot files, against the simulator on a private
 * bus (the test process hosts it; the children get DBUS_SYSTEM_BUS_ADDRESS and a temp lock dir).
 * Concurrency is measured from the simulator's call log (call and reply times of Device1.Connect,
 * StartDiscovery…StopDiscovery per bus client).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSimulatedBluez, type SimCall, type SimulatedBluez } from '../../src/testing/index.js';
import { peripheral } from '../pool/sim-harness.js';
import { transpileSrc, type TranspiledSrc } from '../testing/helpers/transpile-src.js';
import { startPythonHolder, type PythonHolder } from './python-holder.js';

const SERVICE = join(dirname(fileURLToPath(import.meta.url)), 'children', 'service.mjs');
const DEVICE_PATH = (mac: string) => `/org/bluez/hci0/dev_${mac.replaceAll(':', '_')}`;

interface Service {
  readonly child: ChildProcessWithoutNullStreams;
  readonly events: Array<Record<string, unknown>>;
  waitFor(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  readonly exited: Promise<number | string>;
}

let src: TranspiledSrc;
let env: SimulatedBluez | undefined;
let lockDir: string;
const services: Service[] = [];
const pythons: PythonHolder[] = [];

beforeAll(() => {
  src = transpileSrc();
});
afterAll(() => src.remove());
afterEach(async () => {
  for (const s of services.splice(0)) {
    s.child.stdin.end();
    const code = await Promise.race([s.exited, new Promise((r) => setTimeout(() => r('stuck'), 10_000))]);
    if (code === 'stuck') s.child.kill('SIGKILL');
    expect(code).toBe(0);
  }
  for (const p of pythons.splice(0)) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
  await env?.stop();
  env = undefined;
  rmSync(lockDir, { recursive: true, force: true });
});

function startService(config: Record<string, unknown>): Service {
  if (env === undefined) throw new Error('no simulator');
  const child = spawn(process.execPath, [SERVICE, src.dir, JSON.stringify(config)], {
    stdio: 'pipe',
    env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: env.address },
  });
  const events: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  let buffer = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      events.push(JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>);
      buffer = buffer.slice(nl + 1);
      for (const w of waiters.splice(0)) w();
    }
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const waitFor = async (event: string, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = events.find((e) => e.event === event);
      if (found !== undefined) return found;
      const failed = events.find((e) => e.event === 'failed');
      if (failed !== undefined) throw new Error(`service failed: ${JSON.stringify(failed)}\n${stderr}`);
      if (Date.now() > deadline)
        throw new Error(`no "${event}" within ${timeoutMs} ms: ${JSON.stringify(events)}\n${stderr}`);
      await Promise.race([
        new Promise<void>((r) => waiters.push(r)),
        exited,
        new Promise((r) => setTimeout(r, 200)),
      ]);
    }
  };
  const service = { child, events, waitFor, exited };
  services.push(service);
  return service;
}

/** The most calls whose [at, repliedAt] intervals overlap at one moment. */
function maxOverlap(intervals: ReadonlyArray<readonly [number, number]>): number {
  const edges = intervals.flatMap(
    ([a, b]) =>
      [
        [a, 1],
        [b, -1],
      ] as const,
  );
  // A reply and a call at the same instant: the reply first (the slot was free again).
  edges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let now = 0;
  let most = 0;
  for (const [, d] of edges) {
    now += d;
    most = Math.max(most, now);
  }
  return most;
}

const connectCalls = (calls: readonly SimCall[]) =>
  calls.filter((c) => c.interface === 'org.bluez.Device1' && c.member === 'Connect');

describe('processes sharing one adapter', () => {
  it('three Node services and one Python service, 2 slots: never more than 2 Connects at once, all connect', async () => {
    const macs = ['C0:00:00:00:00:01', 'C0:00:00:00:00:02', 'C0:00:00:00:00:03', 'C0:00:00:00:00:04'];
    // latencyScale 1: Connect takes 500 ms, long enough that four unserialized services overlap.
    env = await startSimulatedBluez({
      latencyScale: 1,
      scenario: {
        adapters: [{ name: 'hci0' }],
        devices: macs.map((m) => peripheral(m, { knownOn: ['hci0'] })),
      },
    });
    lockDir = mkdtempSync(join(tmpdir(), 'bcm-xproc-'));
    const lock = { dir: lockDir, maxSlots: 2, retryIntervalMs: 20, timeoutMs: 60_000 };
    const node = macs.slice(0, 3).map((address) => startService({ address, lock }));
    await Promise.all(node.map((s) => s.waitFor('ready')));
    const slotPaths = [0, 1].map((s) => join(lockDir, `bleak-cm-hci0-slot-${s}.lock`));
    // The Python service waits for "go" too (it reads nothing: it starts at once, as late as the go).
    for (const s of node) s.child.stdin.write('go\n');
    const py = startPythonHolder(
      slotPaths,
      0.3,
      { DBUS_SYSTEM_BUS_ADDRESS: env.address },
      DEVICE_PATH(macs[3] ?? ''),
    );
    pythons.push(py);
    const results = await Promise.all(node.map((s) => s.waitFor('connected')));
    expect(results.map((r) => r.adapter)).toEqual(['hci0', 'hci0', 'hci0']);
    expect(await py.exited).toBe(0);
    expect(py.out()).toMatch(/connect rc=0/);

    const connects = connectCalls(env.sim.calls);
    expect(connects).toHaveLength(4); // one per service, no refusals or retries
    expect(connects.every((c) => c.repliedAt !== undefined && c.error === undefined)).toBe(true);
    expect(new Set(connects.map((c) => c.sender)).size).toBe(4);
    expect(maxOverlap(connects.map((c) => [c.at, c.repliedAt ?? Infinity] as const))).toBeLessThanOrEqual(2);
    // Every device is connected, as the simulator itself says.
    const linked = env.sim
      .state()
      .adapters.find((a) => a.name === 'hci0')
      ?.devices.filter((d) => d.connected);
    expect(linked?.map((d) => d.address).sort()).toEqual(macs);
    // The lock files are the Python library's names, still there, and free now.
    expect(readdirSync(lockDir).sort()).toEqual(['bleak-cm-hci0-slot-0.lock', 'bleak-cm-hci0-slot-1.lock']);
  }, 120_000);

  it('two services that must scan, with the scan lock: their discovery sessions never overlap, both connect', async () => {
    const macs = ['C0:00:00:00:00:11', 'C0:00:00:00:00:12'];
    env = await startSimulatedBluez({
      latencyScale: 0.2,
      scenario: { adapters: [{ name: 'hci0' }], devices: macs.map((m) => peripheral(m, { knownOn: [] })) },
    });
    lockDir = mkdtempSync(join(tmpdir(), 'bcm-xproc-'));
    const discovery = { scanLock: { dir: lockDir, retryIntervalMs: 20 } };
    const node = macs.map((address) => startService({ address, discovery }));
    await Promise.all(node.map((s) => s.waitFor('ready')));
    for (const s of node) s.child.stdin.write('go\n');
    await Promise.all(node.map((s) => s.waitFor('connected')));

    const calls = env.sim.calls.filter((c) => c.interface === 'org.bluez.Adapter1');
    const starts = calls.filter((c) => c.member === 'StartDiscovery');
    expect(starts.length).toBeGreaterThanOrEqual(1);
    // Each client's session: its StartDiscovery call to the reply of its StopDiscovery.
    const sessions = starts.map((start) => {
      const stop = calls.find(
        (c) => c.member === 'StopDiscovery' && c.sender === start.sender && c.at >= start.at,
      );
      expect(stop?.repliedAt).toBeDefined();
      return [start.at, stop?.repliedAt ?? Infinity] as const;
    });
    expect(maxOverlap(sessions)).toBe(1);
    // Every session was stopped: the adapter no longer discovers.
    expect(env.sim.state().adapters[0]?.discovering).toBe(false);
    expect(readdirSync(lockDir)).toEqual(['bleak-cm-hci0-scan.lock']);
  }, 120_000);

  it('with a discovery owner, a listening service makes no StartDiscovery call and still finds and connects its device', async () => {
    const mac = 'C0:00:00:00:00:21';
    env = await startSimulatedBluez({
      latencyScale: 0.2,
      scenario: { adapters: [{ name: 'hci0' }], devices: [peripheral(mac, { knownOn: [] })] },
    });
    lockDir = mkdtempSync(join(tmpdir(), 'bcm-xproc-'));
    const owner = startService({ owner: true, scanLock: { dir: lockDir } });
    const listener = startService({ address: mac, discovery: { mode: 'listen' } });
    await Promise.all([owner.waitFor('ready'), listener.waitFor('ready')]);
    listener.child.stdin.write('go\n');
    owner.child.stdin.write('go\n');
    await owner.waitFor('owner-ready');
    await listener.waitFor('connected');
    const connect = connectCalls(env.sim.calls).find((c) => c.path === DEVICE_PATH(mac));
    const listenerSender = connect?.sender;
    expect(listenerSender).toBeDefined();
    const starts = env.sim.calls.filter((c) => c.member === 'StartDiscovery');
    expect(starts.filter((c) => c.sender === listenerSender)).toEqual([]);
    expect(starts.length).toBe(1); // the owner's
    owner.child.stdin.end();
    expect(await owner.exited).toBe(0);
    // The owner stopped its session when it was told to stop.
    expect(
      env.sim.calls.filter((c) => c.member === 'StopDiscovery' && c.sender === starts[0]?.sender),
    ).toHaveLength(1);
  }, 120_000);
});
