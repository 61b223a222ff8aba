import { afterEach, beforeAll, beforeEach, describe, it, onTestFailed } from 'vitest';
import { openBluez } from '../../../src/index.js';
import { PERIPHERAL_ADDRESS } from '../../conformance/peripheral-spec.js';
import type { RealBluezTarget } from '../real-target.js';
import type { LibraryContext, LibraryScenario } from './types.js';

export interface LibrarySuiteOptions {
  title: string;
  /** The shared target (one guest boot for the whole file); rejects when it could not start. */
  target(): Promise<RealBluezTarget>;
  scenarios: readonly LibraryScenario[];
  hookTimeoutMs: number;
}

/**
 * One `it` per scenario. Before each: the target's reset (fresh bluetoothd and controllers, the
 * peripheral advertising). After each: the scenario's deferred cleanups, last first, so clients,
 * actors and pools it opened are closed even when it failed.
 */
export function defineLibrarySuite(options: LibrarySuiteOptions): void {
  describe(options.title, () => {
    let cleanups: Array<() => unknown> = [];

    // The first suite to run boots the guest (build included when the cache lacks it); a boot that
    // fails is reported by every scenario (options.target() rejects in each `it`).
    beforeAll(async () => {
      await options.target().catch(() => undefined);
    }, 15 * 60_000);

    beforeEach(async () => {
      cleanups = [];
      const target = await options.target().catch(() => undefined);
      await target?.reset();
    }, options.hookTimeoutMs);

    afterEach(async () => {
      const errors: unknown[] = [];
      for (const cleanup of cleanups.reverse()) {
        try {
          await cleanup();
        } catch (err) {
          errors.push(err);
        }
      }
      cleanups = [];
      if (errors.length > 0) throw new AggregateError(errors, 'scenario cleanup failed');
    }, options.hookTimeoutMs);

    for (const scenario of options.scenarios) {
      it(
        scenario.name,
        async () => {
          const target = await options.target();
          const started = performance.now();
          const elapsed = (): number => Math.round(performance.now() - started);
          const lines: string[] = [];
          onTestFailed(async () => {
            console.error(`[library] ${scenario.name}:\n${lines.join('\n')}`);
            console.error(await target.diagnostics());
          });
          const ctx: LibraryContext = {
            target,
            busAddress: target.busAddress,
            peripheral: PERIPHERAL_ADDRESS,
            central: 'hci0',
            async openBluez(opts = {}) {
              const client = await openBluez({ ...opts, busAddress: target.busAddress });
              cleanups.push(() => client.close());
              return client;
            },
            defer(cleanup) {
              cleanups.push(cleanup);
            },
            log(message) {
              const line = `  +${elapsed()} ms ${message}`;
              lines.push(line);
              if (process.env['BLUEZ_LIBRARY_VERBOSE'] === '1') console.log(`[${scenario.name}]${line}`);
            },
            elapsed,
          };
          await scenario.run(ctx);
          // What was measured stays visible in the run's output even when it passed.
          console.log(`[library] ${scenario.name}\n${lines.join('\n')}`);
        },
        scenario.timeoutMs ?? 120_000,
      );
    }
  });
}
