import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MessageBus } from 'dbus-next';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { openBus } from './bus.js';
import { SCENARIOS, createContext } from './scenarios.js';
import type { Observation, ScenarioContext } from './scenarios.js';
import type { ConformanceTarget } from './target.js';
import { TraceRecorder } from './trace.js';

/** Observations recorded from real bluetoothd 5.66 by `BLUEZ_CONFORMANCE_RECORD=1 npm run test:bluez`. */
export const GOLDEN_FILE = join(dirname(fileURLToPath(import.meta.url)), 'golden', 'bluez-5.66.json');

function readGolden(): Record<string, Observation> {
  return existsSync(GOLDEN_FILE)
    ? (JSON.parse(readFileSync(GOLDEN_FILE, 'utf8')) as Record<string, Observation>)
    : {};
}

export interface SuiteOptions {
  /** describe() title. */
  title: string;
  createTarget(): Promise<ConformanceTarget>;
  /** Real BlueZ only: write observations into the golden file instead of comparing with it. */
  record?: boolean;
  /** Extra diagnostics on failure (e.g. bluetoothd's log from the guest). */
  diagnostics?(target: ConformanceTarget): Promise<string>;
  /** Per-scenario hook timeout (ms). */
  hookTimeoutMs: number;
  testTimeoutMs: number;
  /** Whether this suite closes the target when done (default true); false when another suite shares it. */
  closeTarget?: boolean;
}

/**
 * The conformance scenarios against one target. Each scenario starts from target.reset(), runs
 * on its own client bus with a trace recorder, and its observation must equal the one recorded
 * from real bluetoothd: the simulator and real BlueZ must agree on everything the library relies on.
 */
export function defineConformanceSuite(options: SuiteOptions): void {
  describe(options.title, () => {
    let target: ConformanceTarget | undefined;
    let bus: MessageBus | undefined;
    let trace: TraceRecorder | undefined;
    let ctx: ScenarioContext | undefined;
    const golden = readGolden();
    const recorded: Record<string, Observation> = {};

    // A target that cannot start fails every scenario by name (a throwing beforeAll would only
    // mark them skipped, and CI totals would not count a run that never happened as failed).
    let startError: unknown;
    beforeAll(async () => {
      try {
        target = await options.createTarget();
      } catch (err) {
        startError = err;
      }
    }, options.hookTimeoutMs * 10);

    afterAll(async () => {
      if (options.closeTarget !== false) await target?.close();
      if (options.record && Object.keys(recorded).length > 0) {
        writeFileSync(GOLDEN_FILE, `${JSON.stringify({ ...readGolden(), ...recorded }, null, 2)}\n`);
      }
      // For reports: every observation of this run, e.g. to diff the simulator against the golden file.
      const dump = process.env['BLUEZ_CONFORMANCE_DUMP'];
      if (dump)
        writeFileSync(`${dump}.${target?.name ?? 'unknown'}.json`, `${JSON.stringify(recorded, null, 2)}\n`);
    }, options.hookTimeoutMs);

    beforeEach(async () => {
      if (!target) return;
      await target.reset();
      bus = openBus(target.busAddress);
      trace = await TraceRecorder.start(bus);
      ctx = createContext(target, bus, trace);
    }, options.hookTimeoutMs);

    afterEach(async () => {
      await trace?.stop();
      bus?.disconnect();
      for (const extra of ctx?.extraBuses ?? []) extra.disconnect();
      bus = undefined;
      trace = undefined;
      ctx = undefined;
    }, options.hookTimeoutMs);

    for (const scenario of SCENARIOS) {
      it(
        scenario.name,
        async () => {
          if (startError !== undefined) {
            throw new Error(`the target did not start: ${String(startError)}`, { cause: startError });
          }
          if (!ctx || !target) throw new Error('scenario context missing');
          const current = ctx;
          const t = target;
          onTestFailed(async () => {
            const file = join(
              tmpdir(),
              `bzcm-conformance-${t.name}-${scenario.name.replace(/\W+/g, '-')}.json`,
            );
            writeFileSync(file, JSON.stringify(current.trace.events, null, 1));
            console.error(`[${t.name}] ${scenario.name}: full trace in ${file}`);
            if (options.diagnostics) console.error(await options.diagnostics(t));
          });
          const observation = await scenario.run(current);
          recorded[scenario.name] = observation;
          if (options.record) return;
          const expected = golden[scenario.name];
          if (expected === undefined) {
            throw new Error(
              `no real-BlueZ observation recorded for "${scenario.name}"; run BLUEZ_CONFORMANCE_RECORD=1 npm run test:bluez`,
            );
          }
          expect(observation, `${t.name} must behave like bluetoothd 5.66`).toEqual(expected);
        },
        options.testTimeoutMs,
      );
    }
  });
}
