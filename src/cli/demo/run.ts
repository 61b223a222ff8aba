/**
 * The demo itself: a private bus, the BlueZ simulator playing a two-adapter gateway with a dozen
 * troublesome devices, and `createAdapterPool` managing them — until every device has ended as
 * expected — then a verified disconnect of everything and a summary. Only public API is used
 * (`bluez-connection-manager` and `bluez-connection-manager/testing`), as an app would.
 */
import type { InspectionEvent } from 'xstate';
import type { PrometheusMetrics } from '../../metrics/prometheus.js';
import {
  createAdapterPool,
  openBluez,
  type AdapterPool,
  type BluezClient,
  type PoolEmitted,
} from '../../index.js';
import { connectionMachine } from '../../machines/index.js';
import { startSimulatedBluez, type SimulatedBluez } from '../../testing/index.js';
import {
  changeLine,
  eventLine,
  layoutFor,
  libraryActions,
  summarizeAttempts,
  summaryText,
  table,
} from './render.js';
import type { DemoSummary } from './render.js';
import { DemoTracker, type StateChange } from './tracker.js';
import { demoWorld, scaledPoolDefaults, type DemoDevice, type DemoWorld } from './world.js';

/** How the demo writes. */
export interface DemoOutput {
  /** `table` redraws a table (TTY), `lines` prints one line per change, `json` prints JSON lines. */
  readonly mode: 'table' | 'lines' | 'json';
  write(text: string): void;
  /** Terminal width (table mode). */
  columns(): number;
}

/** Options of {@link runDemo}. */
export interface DemoRunOptions {
  readonly latencyScale: number;
  readonly output: DemoOutput;
  /** The simulated gateway (default {@link demoWorld}); tests pass variants. */
  readonly world?: (scale: number) => DemoWorld;
  /** Ends the demo early (Ctrl-C); everything is still stopped. */
  readonly signal?: AbortSignal;
  /** Prometheus metrics fed by the pool and its connection actors (`--metrics PORT`). */
  readonly metrics?: PrometheusMetrics;
  /** Every inspection event of the pool and its children also goes here (`--inspect`). */
  readonly inspect?: (event: InspectionEvent) => void;
}

/** Outcome of {@link runDemo}. */
export interface DemoResult {
  readonly summary: DemoSummary | null;
  /** Why the demo did not succeed, for stderr; undefined on success. */
  readonly problem?: string;
}

/** How long the demo may take before it reports what is stuck (wall clock). */
export function demoDeadlineMs(scale: number): number {
  return Math.round(15_000 + 250_000 * scale);
}

/** Where a device stands against what the demo expects of it. */
type Standing = { kind: 'pending' | 'as-expected' | 'unexpected'; why: string };

function standing(device: DemoDevice, tracker: DemoTracker, status: string | undefined): Standing {
  const view = tracker.devices.get(device.address);
  if (view === undefined) return { kind: 'pending', why: 'not tracked' };
  const failed = status === 'failed' || view.state === 'failed';
  const connected = status === 'connected' && view.state === 'connected';
  if (device.expect === 'failed') {
    if (failed) return { kind: 'as-expected', why: '' };
    // Kept alive by the pool, a connected device stays connected: it will not fail by itself.
    if (connected) return { kind: 'unexpected', why: 'connected, but it was expected to fail' };
    return { kind: 'pending', why: `expected to fail, is ${view.state}` };
  }
  const last = tracker.attemptsOf(device.address).at(-1);
  if (failed) {
    return { kind: 'unexpected', why: `failed${last?.cause ? ` (last cause: ${last.cause.class})` : ''}` };
  }
  const losses = device.linkLosses ?? 0;
  if (view.linkLosses < losses) return { kind: 'pending', why: `waiting for its link loss (${view.state})` };
  if (connected) return { kind: 'as-expected', why: '' };
  return { kind: 'pending', why: `is ${view.state}${status === undefined ? '' : ` (pool: ${status})`}` };
}

/** Resolves when `check` holds, re-checked on every `wake`; rejects at the deadline or on abort. */
function until(
  check: () => boolean,
  wakeUp: { wake: () => void },
  deadlineMs: number,
  signal: AbortSignal | undefined,
): Promise<'done' | 'deadline' | 'aborted'> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve('aborted');
    if (check()) return resolve('done');
    const finish = (how: 'done' | 'deadline' | 'aborted'): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      wakeUp.wake = () => {};
      resolve(how);
    };
    const onAbort = (): void => finish('aborted');
    const timer = setTimeout(() => finish('deadline'), deadlineMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    wakeUp.wake = () => {
      if (check()) finish('done');
    };
  });
}

/** Runs the demo; never throws for expected trouble (it is in the result). */
export async function runDemo(options: DemoRunOptions): Promise<DemoResult> {
  const { output, latencyScale: scale, signal } = options;
  const world: DemoWorld = (options.world ?? demoWorld)(scale);
  const layout = layoutFor(world.devices);
  const byAddress = new Map(world.devices.map((d) => [d.address, d]));
  const logs: string[] = [];
  const started = Date.now();
  const json = (record: Record<string, unknown>): void =>
    output.write(`${JSON.stringify({ t: Date.now() - started, ...record })}\n`);

  let env: SimulatedBluez | undefined;
  let bluez: BluezClient | undefined;
  let pool: AdapterPool | undefined;
  let redraw: NodeJS.Timeout | undefined;
  let ticker: NodeJS.Timeout | undefined;
  let drawnLines = 0;
  const waker = { wake: () => {} };
  // Real links per adapter as BlueZ (the simulator) reports them, against the pool's reservations.
  const peakLinks = new Map<string, number>();
  const sampleLinks = (): void => {
    for (const a of env?.sim.state().adapters ?? []) {
      const links = a.devices.filter((d) => d.connected).length;
      peakLinks.set(a.name, Math.max(peakLinks.get(a.name) ?? 0, links));
    }
  };

  let live = output.mode === 'table';
  const draw = (final = false): void => {
    if (!live || pool === undefined) return;
    const lines = table(
      tracker,
      world.devices,
      world.adapters,
      pool.snapshot(),
      layout,
      output.columns(),
      logs,
    );
    const up = drawnLines > 0 ? `\x1b[${drawnLines}F` : '';
    output.write(`${up}${lines.map((l) => `${l}\x1b[K`).join('\n')}\n\x1b[J`);
    drawnLines = lines.length;
    if (final) live = false;
  };
  const scheduleDraw = (): void => {
    if (!live || redraw !== undefined) return;
    // Redraw at most every 50 ms: dozens of changes can arrive in one burst.
    redraw = setTimeout(() => {
      redraw = undefined;
      draw();
    }, 50);
  };

  const tracker = new DemoTracker(
    world.devices.map((d) => d.address),
    connectionMachine.id,
    (kind, detail) => {
      if (kind === 'state') {
        const change = detail as StateChange;
        const device = byAddress.get(change.address);
        const view = tracker.devices.get(change.address);
        if (output.mode === 'json') {
          json({ type: 'state', name: device?.name, ...change });
        } else if (output.mode === 'lines' && device !== undefined) {
          const note = change.to === 'escalating' || change.to === 'failed' ? (view?.note ?? '') : '';
          output.write(`${changeLine(change, device, layout, note)}\n`);
        }
      } else {
        const event = detail as PoolEmitted;
        if (output.mode === 'json') json({ type: 'pool', event });
      }
      sampleLinks();
      scheduleDraw();
      waker.wake();
    },
  );

  const log = (level: string) => (message: string) => {
    logs.push(`${level}: ${message}`);
    if (output.mode === 'json') json({ type: 'log', level, message });
    else if (output.mode === 'lines')
      output.write(`${eventLine(tracker.elapsed(), `${level}: ${message}`)}\n`);
    scheduleDraw();
  };

  const intro = (text: string): void => {
    if (output.mode !== 'json') output.write(`${text}\n`);
  };

  try {
    intro(
      `bluez-cm demo: a simulated BLE gateway — ${world.adapters.length} adapters, ${world.devices.length} devices, ` +
        `each with a known BlueZ failure; latency scale ${scale} (time runs ${+(1 / scale).toFixed(1)}× faster)`,
    );
    env = await startSimulatedBluez({ scenario: world.scenario, latencyScale: scale });
    intro(`private dbus-daemon (pid ${env.bus.pid}) at ${env.address}; BlueZ simulator owns org.bluez`);
    const defaults = scaledPoolDefaults(scale);
    bluez = await openBluez({
      busAddress: env.address,
      dbusCallTimeoutMs: Math.max(1000, Math.round(25_000 * scale)),
      disconnectTimeoutMs: defaults.disconnectTimeoutMs,
    });
    if (output.mode === 'json') {
      json({
        type: 'start',
        latencyScale: scale,
        busAddress: env.address,
        slotsPerAdapter: world.slotsPerAdapter,
        adapters: world.adapters,
        devices: world.devices.map((d) => ({
          address: d.address,
          name: d.name,
          trouble: d.trouble,
          expect: d.expect,
        })),
      });
    }
    intro(
      `adapters: ${world.adapters.map((a) => `${a.name} (${a.alias}, controller holds ${a.controllerSlots} links)`).join(', ')}; pool configured for ${world.slotsPerAdapter} per adapter`,
    );
    intro('');
    pool = createAdapterPool({
      bluez,
      slotsPerAdapter: world.slotsPerAdapter,
      defaults,
      inspect: (event) => {
        tracker.inspect(event);
        options.metrics?.inspect(event);
        options.inspect?.(event);
      },
      logger: {
        info: (_fields, message) => log('info')(message),
        warn: (_fields, message) => log('warn')(message),
        error: (_fields, message) => log('error')(message),
      },
    });
    const running = pool;
    options.metrics?.observePool(running);
    running.actor.on('*', (event) => tracker.poolEvent(event, running.snapshot()));
    for (const d of world.devices) running.connect(d.address, d.options);
    draw();
    // The elapsed time and slot bars move even while no state changes (a 2 s attempt deadline).
    if (live) ticker = setInterval(scheduleDraw, 250);

    let cutReport: DemoSummary['powerCut'] = null;
    const statusOf = (address: string) =>
      running.snapshot().devices.find((d) => d.address === address)?.status;
    const deadline = demoDeadlineMs(scale);
    const settledAsExpected = (): boolean =>
      world.devices.every((d) => standing(d, tracker, statusOf(d.address)).kind === 'as-expected');

    // Phase 2: an adapter loses power with its links up; every device on it must come back.
    const powerCut = async (
      cut: NonNullable<DemoWorld['powerCut']>,
      remainingMs: number,
    ): Promise<Awaited<ReturnType<typeof until>>> => {
      const sim = env?.sim;
      if (sim === undefined) return 'aborted';
      const victims = new Map(
        [...tracker.devices.values()]
          .filter((v) => v.state === 'connected' && v.adapter === cut.adapter)
          .map((v) => [v.address, v.linkLosses]),
      );
      log('demo')(
        `${cut.adapter} loses power for ${(cut.forMs / 1000).toFixed(2)} s (a brown-out): ${victims.size} links drop`,
      );
      const fault = sim.inject({ kind: 'power-off', target: { adapter: cut.adapter } });
      const restored = await until(() => false, { wake: () => {} }, cut.forMs, signal);
      fault.clear();
      if (restored === 'aborted') return 'aborted';
      log('demo')(`${cut.adapter} powered again`);
      const poweredAt = Date.now();
      cutReport = { adapter: cut.adapter, offMs: cut.forMs, linksDropped: victims.size, backAfterMs: null };
      const back = await until(
        () =>
          settledAsExpected() &&
          [...victims].every(([address, before]) => (tracker.devices.get(address)?.linkLosses ?? 0) > before),
        waker,
        Math.max(1, remainingMs),
        signal,
      );
      if (back === 'done') cutReport = { ...cutReport, backAfterMs: Date.now() - poweredAt };
      return back;
    };
    const outcome = await until(
      () => world.devices.every((d) => standing(d, tracker, statusOf(d.address)).kind !== 'pending'),
      waker,
      deadline,
      signal,
    );
    let cutOutcome: Awaited<ReturnType<typeof until>> | null = null;

    // Only a healthy gateway gets the brown-out: with a device already wrong the verdict is known.
    if (outcome === 'done' && settledAsExpected() && world.powerCut !== undefined) {
      cutOutcome = await powerCut(world.powerCut, deadline - (Date.now() - started));
    }
    tracker.updatePeaks(running.snapshot());
    clearInterval(ticker);
    clearTimeout(redraw);
    redraw = undefined;
    draw(true);

    // Final states are taken before the teardown.
    const finals = new Map(
      world.devices.map((d) => [
        d.address,
        {
          state: tracker.devices.get(d.address)?.state ?? '-',
          adapter: tracker.devices.get(d.address)?.adapter ?? null,
        },
      ]),
    );
    const snapshot = running.snapshot();
    const unexpected: string[] = [];
    if (outcome === 'aborted' || cutOutcome === 'aborted') {
      unexpected.push('interrupted before every device settled');
    }
    if (outcome === 'deadline') unexpected.push(`not settled within ${(deadline / 1000).toFixed(0)} s`);
    if (cutOutcome === 'deadline') {
      unexpected.push(
        `not every device was back after the power cut within ${(deadline / 1000).toFixed(0)} s`,
      );
    }
    for (const d of world.devices) {
      const check = standing(d, tracker, snapshot.devices.find((x) => x.address === d.address)?.status);
      if (check.kind !== 'as-expected') unexpected.push(`${d.name} (${d.address}) ${check.why}`);
    }

    if (output.mode === 'lines')
      output.write(`${eventLine(tracker.elapsed(), 'disconnecting every device (verified disconnect)')}\n`);
    else if (output.mode === 'table') output.write('\ndisconnecting every device (verified disconnect)…\n');
    await Promise.all(world.devices.map((d) => running.disconnect(d.address).catch(() => {})));
    const linksAfterTeardown = env.sim
      .state()
      .adapters.reduce((n, a) => n + a.devices.filter((d) => d.connected).length, 0);

    if (linksAfterTeardown > 0)
      unexpected.push(`${linksAfterTeardown} links left after the verified disconnects`);

    const summary = buildSummary(world, tracker, {
      finals,
      snapshot,
      elapsedMs: Date.now() - started,
      unexpected,
      linksAfterTeardown,
      peakLinks,
      firstLateGattDelayMs: defaults.lateGattDelaysMs[0] ?? 0,
      powerCut: cutReport,
    });
    if (output.mode === 'json') json({ type: 'summary', ...summary });
    else output.write(`\n${summaryText(summary, layout).join('\n')}\n`);
    return summary.ok
      ? { summary }
      : { summary, problem: `${unexpected.length} problem(s): ${unexpected.join('; ')}` };
  } finally {
    clearInterval(ticker);
    clearTimeout(redraw);
    await pool?.close();
    await bluez?.close();
    await env?.stop();
    if (output.mode === 'json') json({ type: 'stopped' });
    else intro('stopped the pool, the simulator and the private bus; nothing left running');
  }
}

interface SummaryInputs {
  finals: Map<string, { state: string; adapter: string | null }>;
  snapshot: ReturnType<AdapterPool['snapshot']>;
  elapsedMs: number;
  unexpected: string[];
  linksAfterTeardown: number;
  peakLinks: Map<string, number>;
  firstLateGattDelayMs: number;
  powerCut: DemoSummary['powerCut'];
}

function buildSummary(world: DemoWorld, tracker: DemoTracker, inputs: SummaryInputs): DemoSummary {
  const { finals, snapshot, elapsedMs, unexpected, linksAfterTeardown, peakLinks } = inputs;
  const devices = world.devices.map((d) => {
    const view = tracker.devices.get(d.address);
    return {
      address: d.address,
      name: d.name,
      trouble: d.trouble,
      expected: d.expect,
      final: finals.get(d.address)?.state ?? '-',
      adapter: finals.get(d.address)?.adapter ?? null,
      connects: view?.connects ?? 0,
      linkLosses: view?.linkLosses ?? 0,
      rotations: view?.rotations ?? [],
      actions: view === undefined ? [] : libraryActions(view, inputs.firstLateGattDelayMs),
      attempts: summarizeAttempts(tracker, d.address),
    };
  });
  const failuresByClass: Record<string, number> = {};
  for (const d of world.devices) {
    for (const a of tracker.attemptsOf(d.address)) {
      if (a.cause !== null) failuresByClass[a.cause.class] = (failuresByClass[a.cause.class] ?? 0) + 1;
    }
  }
  const attempts = devices.reduce((n, d) => n + d.attempts.length, 0);
  return {
    elapsedMs,
    latencyScale: world.scenario.latencyScale ?? 1,
    ok: unexpected.length === 0,
    devices,
    adapters: world.adapters.map((a) => {
      const s = snapshot.adapters.find((x) => x.name === a.name);
      return {
        name: a.name,
        alias: a.alias,
        configuredSlots: world.slotsPerAdapter,
        controllerSlots: a.controllerSlots,
        limit: s?.limit ?? world.slotsPerAdapter,
        learnedLimit: s?.learnedLimit ?? null,
        peakInUse: tracker.peakInUse.get(a.name) ?? 0,
        peakLinks: peakLinks.get(a.name) ?? 0,
      };
    }),
    totals: {
      devices: devices.length,
      connected: devices.filter((d) => d.expected === 'connected' && d.final === 'connected').length,
      expectedConnected: devices.filter((d) => d.expected === 'connected').length,
      failed: devices.filter((d) => d.expected === 'failed' && d.final === 'failed').length,
      expectedFailed: devices.filter((d) => d.expected === 'failed').length,
      attempts,
      failedAttempts: Object.values(failuresByClass).reduce((n, c) => n + c, 0),
      failuresByClass,
      linkLosses: devices.reduce((n, d) => n + d.linkLosses, 0),
      rotations: devices.reduce((n, d) => n + d.rotations.length, 0),
    },
    unexpected,
    linksAfterTeardown,
    powerCut: inputs.powerCut,
  };
}
