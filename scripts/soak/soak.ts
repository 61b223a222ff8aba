/**
 * `npm run soak -- --cycles 10000 [--seed S] [--path P] [--no-shrink]`: the long randomized soak
 * (test/soak/harness.ts) as a script. Each cycle is one fast-check run: a generated scenario
 * (adapters, devices, faults from the simulator's whole catalogue, cancellations) against the pool
 * or establishConnection, then every invariant. Prints progress and the heap after each tenth of
 * the cycles, the outcome counts, and the verdict: every invariant held in every cycle, and the
 * heap of the last 10 % of cycles within 5 % of the first 10 %.
 *
 * A failure prints fast-check's seed and path; `npm run soak -- --seed S --path P` replays exactly
 * that counterexample (the shrunk one), `--seed S` alone the whole run. With `--keep-going` a
 * broken cycle is printed with its replay command (`--seed S --path K`: run K of that seed) and the
 * run goes on, so one long run reports every broken cycle and still gives the heap verdict.
 * Cycles depend on real timers: a replay repeats the scenario, and a race it hit may need a few
 * replays (or the regression test written from it) to show again.
 */
import { getHeapSpaceStatistics } from 'node:v8';
import fc from 'fast-check';
import { startSoakWorld } from '../../test/soak/harness.js';
import { soakScenario } from '../../test/soak/scenario.js';

interface Args {
  cycles: number;
  seed: number;
  path: string | undefined;
  shrink: boolean;
  keepGoing: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    cycles: 1000,
    seed: Date.now() ^ (Math.random() * 0x100000000),
    path: undefined,
    shrink: true,
    keepGoing: false,
  };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[(i += 1)];
      if (v === undefined) throw new RangeError(`${flag} needs a value`);
      return v;
    };
    if (flag === '--cycles') args.cycles = Number(value());
    else if (flag === '--seed') args.seed = Number(value());
    else if (flag === '--path') args.path = value();
    else if (flag === '--no-shrink') args.shrink = false;
    else if (flag === '--keep-going') args.keepGoing = true;
    else if (flag === '--help') {
      console.log(
        'npm run soak -- [--cycles N (default 1000)] [--seed S] [--path P] [--no-shrink] [--keep-going]\n' +
          '  --keep-going: a cycle that breaks an invariant is reported with its replay command and the run goes on',
      );
      process.exit(0);
    } else throw new RangeError(`unknown option ${flag} (try --help)`);
  }
  if (!Number.isInteger(args.cycles) || args.cycles < 10)
    throw new RangeError('--cycles must be an integer >= 10');
  if (!Number.isInteger(args.seed)) throw new RangeError('--seed must be an integer');
  return args;
}

const maybeGc = (globalThis as { gc?: () => void }).gc;
if (maybeGc === undefined) throw new Error('run with node --expose-gc (npm run soak does)');
const gc: () => void = maybeGc;

const mb = (bytes: number): string => `${(bytes / 1048576).toFixed(2)} MB`;
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const world = await startSoakWorld();
  const started = Date.now();
  const tenth = Math.ceil(args.cycles / 10);
  // Heap after a full GC, sampled every `sampleEvery` cycles, grouped by tenth of the run.
  const sampleEvery = Math.max(1, Math.floor(tenth / 50));
  const heapByTenth: number[][] = Array.from({ length: 10 }, () => []);
  // The same without V8's code spaces: compiled code grows while the JIT optimizes paths that
  // only rare scenarios take (a heap snapshot diff over 240 cycles showed little else growing), and it is
  // no object the library keeps.
  const dataByTenth: number[][] = Array.from({ length: 10 }, () => []);
  const outcomes = new Map<string, number>();
  let mainRuns = 0;
  const phaseTotals: number[] = [];
  const brokenCycles: string[] = [];
  let failing = false;
  const apis = { pool: 0, establish: 0 };
  console.log(
    `soak: ${args.cycles} cycles, seed ${args.seed}${args.path ? `, path ${args.path}` : ''}; ` +
      `private dbus-daemon pid ${world.bus.pid}; heap sampled after a full GC every ${sampleEvery} cycle(s)`,
  );
  let lastCycle = 0;
  let sameSince = Date.now();
  const hangWatch = setInterval(() => {
    if (world.cycles !== lastCycle) {
      lastCycle = world.cycles;
      sameSince = Date.now();
    } else if (Date.now() - sameSince > 10_000) {
      console.log(
        `cycle ${world.cycles} has run for ${Math.round((Date.now() - sameSince) / 1000)} s: ${world.phase}`,
      );
    }
  }, 5_000);
  hangWatch.unref();
  try {
    await fc.assert(
      fc.asyncProperty(soakScenario, async (scenario) => {
        const result = await world.runCycle(scenario);
        const broken =
          result.violations.length === 0
            ? undefined
            : `invariants broken in cycle ${world.cycles}:\n  - ${result.violations.join('\n  - ')}\n` +
              `scenario: ${JSON.stringify(scenario)}\noutcomes: ${result.outcomes.join(', ')}`;
        if (!failing) {
          mainRuns += 1;
          result.phasesMs.forEach((ms, i) => (phaseTotals[i] = (phaseTotals[i] ?? 0) + ms));
          apis[scenario.api] += 1;
          for (const o of result.outcomes) {
            const key = o.replace(/^\S+ /, '');
            outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
          }
          if (broken !== undefined && args.keepGoing) {
            // Without shrinking, run k (from 0) of a seed is replayed by --path k.
            const replay = `npm run soak -- --seed ${args.seed} --path ${mainRuns - 1}${args.path === undefined ? '' : ` (after ${args.path})`}`;
            brokenCycles.push(replay);
            console.log(`${broken}\nreplay: ${replay}`);
          }
          if (mainRuns % sampleEvery === 0) {
            gc();
            const t = Math.min(9, Math.floor((mainRuns - 1) / tenth));
            const used = process.memoryUsage().heapUsed;
            const code = getHeapSpaceStatistics()
              .filter((sp) => sp.space_name.startsWith('code'))
              .reduce((a, sp) => a + sp.space_used_size, 0);
            heapByTenth[t]!.push(used);
            dataByTenth[t]!.push(used - code);
          }
          if (mainRuns % tenth === 0 || mainRuns === args.cycles) {
            const t = Math.min(9, Math.floor((mainRuns - 1) / tenth));
            const secs = (Date.now() - started) / 1000;
            console.log(
              `[${String(Math.round((mainRuns / args.cycles) * 100)).padStart(3)} %] ${mainRuns} cycles in ${secs.toFixed(0)} s ` +
                `(${(mainRuns / secs).toFixed(1)}/s; pool ${apis.pool}, establish ${apis.establish}); heap ${mb(mean(heapByTenth[t]!))}, without code ${mb(mean(dataByTenth[t]!))} ` +
                `(mean of ${heapByTenth[t]!.length}); ${brokenCycles.length === 0 ? 'invariants held in every cycle so far' : `${brokenCycles.length} cycle(s) broke an invariant`}`,
            );
          }
        }
        if (broken !== undefined && !args.keepGoing) {
          failing = true;
          throw new Error(broken);
        }
      }),
      {
        numRuns: args.cycles,
        seed: args.seed,
        ...(args.path === undefined ? {} : { path: args.path }),
        endOnFailure: !args.shrink,
      },
    );
  } catch (err) {
    console.log(String(err instanceof Error ? err.message : err));
    const cause = err instanceof Error ? err.cause : undefined;
    if (cause instanceof Error) console.log(`\n${cause.message}`);
    console.log(
      `\nreproduce: npm run soak -- --cycles ${args.cycles} --seed ${args.seed} (the whole run), or with the --path printed above for the shrunk counterexample alone`,
    );
    await world.stop();
    process.exitCode = 1;
    return;
  }
  await world.stop();
  const first = mean(dataByTenth[0]!);
  const last = mean(dataByTenth[9]!);
  const totalChange = (mean(heapByTenth[9]!) - mean(heapByTenth[0]!)) / mean(heapByTenth[0]!);
  const change = (last - first) / first;
  const flat = Math.abs(change) <= 0.05;
  console.log(
    `mean per cycle: start simulator ${(phaseTotals[0]! / mainRuns).toFixed(0)} ms, scenario ${(phaseTotals[1]! / mainRuns).toFixed(0)} ms, ` +
      `stop simulator ${(phaseTotals[2]! / mainRuns).toFixed(0)} ms, leak checks ${(phaseTotals[3]! / mainRuns).toFixed(0)} ms`,
  );
  console.log(`\noutcomes over ${mainRuns} cycles: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(
    `heap per tenth: ${heapByTenth.map((h) => mb(mean(h))).join(', ')} (last vs first ${(totalChange * 100).toFixed(2)} %)\n` +
      `without code spaces: ${dataByTenth.map((h) => mb(mean(h))).join(', ')}\n` +
      `verdict: ${brokenCycles.length === 0 ? `every invariant held in all ${mainRuns} cycles` : `${brokenCycles.length} of ${mainRuns} cycles broke an invariant (replay: ${brokenCycles.join('; ')})`}; heap without code spaces last 10 % ${mb(last)} vs first 10 % ${mb(first)} ` +
      `(${(change * 100).toFixed(2)} %): ${flat ? 'within 5 %: flat' : 'NOT within 5 %'}; ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  if (!flat || brokenCycles.length > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
